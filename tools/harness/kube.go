package harness

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// KubeAPI is a real kube-apiserver backed by a real etcd, without kubelet, scheduler or
// controllers: objects are stored and validated exactly as in a cluster, but no pod runs.
type KubeAPI struct {
	URL        string
	Kubeconfig string
	Token      string
}

// StartKubeAPI starts etcd and kube-apiserver (from kubeDir, see tools/kube/build.sh) on
// free loopback ports and waits until the API server is ready.
func (h *Harness) StartKubeAPI(ctx context.Context, kubeDir string) (*KubeAPI, error) {
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd is not installed: run `make prereqs` (apt-get install -y etcd-server)")
	}
	dir := filepath.Join(h.Dir, "kube")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_, etcdURL, err := h.startEtcd(ctx, etcdBin, dir)
	if err != nil {
		return nil, err
	}

	keyFile := filepath.Join(dir, "sa.key")
	if err := writeRSAKey(keyFile); err != nil {
		return nil, err
	}
	token := randomHex(16)
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	_, err = h.start("kube-apiserver", environ(), filepath.Join(kubeDir, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port), "--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokenFile, "--authorization-mode", "RBAC",
		"--service-account-key-file", keyFile, "--service-account-signing-key-file", keyFile,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-cluster-ip-range", "10.96.0.0/16",
		// With no real node network, the default reconciler would try to publish the
		// loopback address as the kubernetes Service's endpoint and fail.
		"--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false",
	)
	if err != nil {
		return nil, err
	}
	api := &KubeAPI{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Token: token,
		Kubeconfig: filepath.Join(dir, "kubeconfig")}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
`, api.URL, token)
	if err := os.WriteFile(api.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return api, waitAuthorized(wctx, api.URL+"/readyz", token)
}

func (h *Harness) startEtcd(ctx context.Context, bin, dir string) (*Process, string, error) {
	client, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	peer, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	p, err := h.start("etcd", environ(), bin,
		"--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--log-level", "warn")
	if err != nil {
		return nil, "", err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p, clientURL, WaitHTTP(wctx, clientURL+"/health", 200)
}

func waitAuthorized(ctx context.Context, url, token string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// The API server's serving certificate is self-signed into its cert dir.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback test server with a self-signed cert
	}}
	header := http.Header{"Authorization": {"Bearer " + token}}
	if err := pollHTTP(ctx, client, url, header, http.StatusOK, 200*time.Millisecond); err != nil {
		return fmt.Errorf("kube-apiserver never became ready: %w", err)
	}
	return nil
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return os.WriteFile(path, b, 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
