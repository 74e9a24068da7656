package images

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// cacheFormat names the cache's layout and the layer encoding: bump it when either changes,
// so stale entries are not reused.
const cacheFormat = "images-v1"

// epoch is every file's mtime and the images' creation time, so the same inputs give the
// same digests.
var epoch = time.Unix(0, 0).UTC()

// entry is one file, directory or symlink of a layer.
type entry struct {
	path     string // absolute path in the image
	typ      byte   // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode     int64  // permission bits, with the sticky bit where wanted
	uid, gid int
	src      string            // TypeReg: the host file holding the content, or
	data     []byte            // TypeReg: the content itself
	link     string            // TypeSymlink: the target
	xattrs   map[string]string // e.g. "security.capability"
}

func dir(p string, mode int64, uid, gid int) entry {
	return entry{path: p, typ: tar.TypeDir, mode: mode, uid: uid, gid: gid}
}

func file(p string, mode int64, src string) entry {
	return entry{path: p, typ: tar.TypeReg, mode: mode, src: src}
}

func inline(p string, mode int64, data string) entry {
	return entry{path: p, typ: tar.TypeReg, mode: mode, data: []byte(data)}
}

func symlink(p, target string) entry {
	return entry{path: p, typ: tar.TypeSymlink, mode: 0o777, link: target}
}

// builder makes layers and image tarballs under one cache directory.
type builder struct {
	ctx      context.Context
	cacheDir string                  // Inputs.CacheDir or DefaultCacheDir
	cache    string                  // <cacheDir>/images-v1: layers/ and tars/
	hashes   map[string]string       // host file -> sha256 of its content
	layers   map[string]*cachedLayer // layer key -> layer, within one BuildAll
}

func newBuilder(ctx context.Context, cacheDir string) (*builder, error) {
	b := &builder{
		ctx:      ctx,
		cacheDir: cacheDir,
		cache:    filepath.Join(cacheDir, cacheFormat),
		hashes:   map[string]string{},
		layers:   map[string]*cachedLayer{},
	}
	for _, d := range []string{"layers", "tars"} {
		if err := os.MkdirAll(filepath.Join(b.cache, d), 0o755); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// contentHash is the sha256 of a host file, computed once per BuildAll.
func (b *builder) contentHash(p string) (string, error) {
	if h, ok := b.hashes[p]; ok {
		return h, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", p, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	b.hashes[p] = sum
	return sum, nil
}

// normalize sorts the entries by path (a parent sorts before what it holds) and adds every
// missing parent directory as root-owned 0755, as `docker build` would.
func normalize(entries []entry) ([]entry, error) {
	seen := map[string]bool{"/": true}
	var out []entry
	for _, e := range entries {
		if !path.IsAbs(e.path) || path.Clean(e.path) != e.path || e.path == "/" {
			return nil, fmt.Errorf("layer path %q is not a clean absolute path", e.path)
		}
		if seen[e.path] {
			return nil, fmt.Errorf("layer path %s given twice", e.path)
		}
		seen[e.path] = true
		out = append(out, e)
	}
	for _, e := range slices.Clone(out) {
		for p := path.Dir(e.path); !seen[p]; p = path.Dir(p) {
			seen[p] = true
			out = append(out, dir(p, 0o755, 0, 0))
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

// key identifies a layer by everything that goes into it: the same key means the same
// tar, byte for byte.
func (b *builder) key(entries []entry) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, cacheFormat)
	for _, e := range entries {
		fmt.Fprintf(h, "%q %c %o %d:%d %q", e.path, e.typ, e.mode, e.uid, e.gid, e.link)
		keys := make([]string, 0, len(e.xattrs))
		for k := range e.xattrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(h, " %q=%x", k, e.xattrs[k])
		}
		if e.typ == tar.TypeReg {
			sum := sha256.Sum256(e.data)
			c := hex.EncodeToString(sum[:])
			if e.src != "" {
				var err error
				if c, err = b.contentHash(e.src); err != nil {
					return "", err
				}
			}
			fmt.Fprintf(h, " %s", c)
		}
		fmt.Fprintln(h)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// layer returns the uncompressed layer holding entries, from the cache when a layer with
// the same content was built before. purpose names its cache files; older layers of the
// same purpose are removed.
func (b *builder) layer(purpose string, entries []entry) (*cachedLayer, error) {
	if err := b.ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := normalize(entries)
	if err != nil {
		return nil, fmt.Errorf("%s layer: %w", purpose, err)
	}
	k, err := b.key(entries)
	if err != nil {
		return nil, fmt.Errorf("%s layer: %w", purpose, err)
	}
	if l, ok := b.layers[k]; ok {
		return l, nil
	}
	base := filepath.Join(b.cache, "layers", purpose+"-"+k[:32])
	l, err := readCachedLayer(base)
	if err != nil {
		if l, err = b.writeLayer(base, entries); err != nil {
			return nil, fmt.Errorf("%s layer: %w", purpose, err)
		}
	}
	prune(filepath.Join(b.cache, "layers", purpose+"-"+hexGlob+".*"), base+".tar", base+".json")
	b.layers[k] = l
	return l, nil
}

type layerMeta struct {
	DiffID string `json:"diffID"`
	Size   int64  `json:"size"`
}

func readCachedLayer(base string) (*cachedLayer, error) {
	b, err := os.ReadFile(base + ".json")
	if err != nil {
		return nil, err
	}
	var m layerMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	h, err := v1.NewHash(m.DiffID)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(base + ".tar")
	if err != nil {
		return nil, err
	}
	if fi.Size() != m.Size {
		return nil, fmt.Errorf("%s.tar: size %d, want %d", base, fi.Size(), m.Size)
	}
	return &cachedLayer{path: base + ".tar", hash: h, size: m.Size}, nil
}

func (b *builder) writeLayer(base string, entries []entry) (*cachedLayer, error) {
	f, err := os.CreateTemp(filepath.Dir(base), ".layer-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(f, h))
	for _, e := range entries {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
		if err := writeEntry(tw, e); err != nil {
			return nil, fmt.Errorf("%s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(f.Name(), base+".tar"); err != nil {
		return nil, err
	}
	meta, err := json.Marshal(layerMeta{DiffID: diffID.String(), Size: size})
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(base+".json", meta); err != nil {
		return nil, err
	}
	return &cachedLayer{path: base + ".tar", hash: diffID, size: size}, nil
}

func writeEntry(tw *tar.Writer, e entry) error {
	hdr := &tar.Header{
		Typeflag: e.typ,
		Name:     strings.TrimPrefix(e.path, "/"),
		Linkname: e.link,
		Mode:     e.mode,
		Uid:      e.uid,
		Gid:      e.gid,
		ModTime:  epoch,
	}
	if e.typ == tar.TypeDir {
		hdr.Name += "/"
	}
	if len(e.xattrs) > 0 {
		hdr.Format = tar.FormatPAX
		hdr.PAXRecords = map[string]string{}
		for k, v := range e.xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	if e.typ != tar.TypeReg {
		return tw.WriteHeader(hdr)
	}
	if e.src == "" {
		hdr.Size = int64(len(e.data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Size = fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// A file that changed since it was hashed fails here (short or long write) instead of
	// caching a layer under the wrong key.
	n, err := io.Copy(tw, f)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("%s changed while being read", e.src)
	}
	return err
}

// cachedLayer is an uncompressed layer in a file: its digest is its diff ID, and the blob
// the tarball holds is the tar itself.
type cachedLayer struct {
	path string
	hash v1.Hash
	size int64
}

var _ v1.Layer = (*cachedLayer)(nil)

func (l *cachedLayer) Digest() (v1.Hash, error)             { return l.hash, nil }
func (l *cachedLayer) DiffID() (v1.Hash, error)             { return l.hash, nil }
func (l *cachedLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *cachedLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }
func (l *cachedLayer) Size() (int64, error)                 { return l.size, nil }
func (l *cachedLayer) MediaType() (types.MediaType, error) {
	return types.DockerUncompressedLayer, nil
}

func writeFileAtomic(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// hexGlob matches the 32 hex digits of a cache key in a file name.
var hexGlob = strings.Repeat("[0-9a-f]", 32)

// prune removes the cache files matching pattern except keep: older builds of the same
// layer or image. Best effort; what callers hold is hard-linked or copied out already.
func prune(pattern string, keep ...string) {
	matches, _ := filepath.Glob(pattern)
	for _, m := range matches {
		if !slices.Contains(keep, m) {
			_ = os.Remove(m)
		}
	}
}

// linkOrCopy makes dst a hard link to src, or a copy where links do not work (another
// file system), replacing dst.
func linkOrCopy(src, dst string) error {
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Chmod(out.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}
