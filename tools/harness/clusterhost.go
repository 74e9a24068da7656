package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hostState is what a cluster can leave behind on the machine: processes, mounts, network
// namespaces, links, iptables rules, cgroups and directories. Taken before the cluster starts
// and after it is torn down, the difference is the leftovers.
type hostState struct {
	mounts   map[string]bool // mount points
	netns    map[string]bool // network namespaces some process is in, plus named ones
	links    map[string]bool
	iptables map[string]bool // "<tool> <table> <chain or rule>"
	paths    map[string]bool // host paths the kubelet, containerd or CNI create
	procs    map[string]bool // processes started for the cluster (matched by dir), "pid cmdline"
}

// Host paths the node's parts create outside their configured directories.
var clusterHostPaths = []string{
	"/var/lib/cni", "/var/log/containers", "/run/containerd", "/var/lib/kubelet", "/etc/cni",
	"/sys/fs/cgroup/cpu/kubepods", "/sys/fs/cgroup/memory/kubepods", "/sys/fs/cgroup/pids/kubepods",
	"/sys/fs/cgroup/cpuset/kubepods", "/sys/fs/cgroup/systemd/kubepods",
}

func captureHostState(dir string) (*hostState, error) {
	s := &hostState{mounts: map[string]bool{}, netns: map[string]bool{}, links: map[string]bool{},
		iptables: map[string]bool{}, paths: map[string]bool{}, procs: map[string]bool{}}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 {
			s.mounts[fields[4]] = true
		}
	}
	_ = f.Close()
	self, _ := os.Readlink("/proc/self/ns/net")
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		if ns, err := os.Readlink(p + "/ns/net"); err == nil && ns != self {
			s.netns[ns] = true
		}
		cmdline, err := os.ReadFile(p + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue
		}
		line := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		if strings.Contains(line, dir) && filepath.Base(p) != fmt.Sprint(os.Getpid()) {
			s.procs[filepath.Base(p)+" "+line] = true
		}
	}
	for _, d := range []string{"/run/netns", "/var/run/netns"} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			s.netns[filepath.Join(d, e.Name())] = true
		}
	}
	links, err := linkNames()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		s.links[l] = true
	}
	s.iptables = captureIptables()
	for _, p := range clusterHostPaths {
		if _, err := os.Lstat(p); err == nil {
			s.paths[p] = true
		}
	}
	return s, nil
}

// diff lists what now has that before had not.
func (before *hostState) diff(now *hostState) []string {
	var out []string
	add := func(kind string, b, n map[string]bool) {
		for k := range n {
			if !b[k] {
				out = append(out, kind+" "+k)
			}
		}
	}
	add("mount", before.mounts, now.mounts)
	add("netns", before.netns, now.netns)
	add("link", before.links, now.links)
	add("iptables", before.iptables, now.iptables)
	add("path", before.paths, now.paths)
	add("process", before.procs, now.procs)
	sort.Strings(out)
	return out
}

// drain deletes every workload through the API and waits until the kubelet has stopped every
// pod: containers killed, and each sandbox's network torn down by CNI (veth, IP lease,
// iptables rules) and its namespace removed. That is the clean way out; sweep handles the rest.
func (c *Cluster) drain(ctx context.Context) error {
	if _, err := c.Kubectl(ctx, "delete", "deployments,statefulsets,daemonsets,replicasets,jobs",
		"--all", "--all-namespaces", "--wait=false"); err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "delete", "pods", "--all", "--all-namespaces", "--grace-period=2", "--wait=false"); err != nil {
		return err
	}
	netns := filepath.Join(c.Dir, "run", "netns")
	err := Poll(ctx, 0, 500*time.Millisecond, func(ctx context.Context) error {
		tasks, err := c.Ctr(ctx, "tasks", "ls", "-q")
		if err != nil {
			return err
		}
		entries, _ := os.ReadDir(netns)
		if strings.TrimSpace(tasks) == "" && len(entries) == 0 {
			return nil
		}
		return fmt.Errorf("tasks %q, %d network namespaces", strings.TrimSpace(tasks), len(entries))
	})
	if err != nil {
		return fmt.Errorf("pods still running after delete: %w", err)
	}
	return nil
}

// Close tears the cluster down: drain the pods, stop the node and the control plane, clean
// kube-proxy's rules, then sweep whatever is left (processes, mounts, links, rules, cgroups,
// paths) and restore the sysctls. Leftovers then reports what could not be removed.
func (c *Cluster) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if c.kubelet != nil {
		if ok, _ := c.kubelet.Exited(); !ok {
			if err := c.drain(ctx); err != nil {
				errs = append(errs, fmt.Errorf("drain: %w", err))
			}
		}
	}
	// Newest first: kube-proxy, kubelet, containerd, then the control plane.
	for i := len(c.procs) - 1; i >= 0; i-- {
		// A component that exits non-zero on SIGTERM (kube-scheduler does) is still stopped;
		// only one that had to be killed is a problem.
		var exit *exec.ExitError
		if err := c.procs[i].Stop(20 * time.Second); err != nil && !errors.As(err, &exit) {
			errs = append(errs, fmt.Errorf("%s: %w", c.procs[i].Name, err))
		}
	}
	if _, err := run(ctx, nil, filepath.Join(c.bins.KubeDir, "kube-proxy"), "--cleanup"); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.sweep())
	return errors.Join(errs...)
}

// sweep removes, by force, anything of the cluster's still on the host.
func (c *Cluster) sweep() error {
	var errs []error
	now, err := captureHostState(c.Dir)
	if err != nil {
		return err
	}
	// Shims whose containerd is gone name our socket on their command line; container
	// processes live in the kubepods cgroups our kubelet made (only when there were none
	// before: another kubelet's containers are never touched).
	ours := !c.before.paths["/sys/fs/cgroup/pids/kubepods"]
	killMatching(func(cmdline, rootfs, cgroup string) bool {
		return strings.Contains(cmdline, c.Dir) || strings.HasPrefix(rootfs, c.Dir+"/") ||
			(ours && strings.Contains(cgroup, ":/kubepods/"))
	})
	// Mounts: container rootfs overlays, /dev/shm, network namespaces, kubelet volumes. Only
	// those under our directory are touched; any other new one is counted by Leftovers.
	errs = append(errs, unmountUnder([]string{c.Dir}))
	if !c.before.links[clusterBridge] && now.links[clusterBridge] {
		errs = append(errs, deleteBridge())
	}
	errs = append(errs, sweepIptables(c.before, now, true))
	// cgroups the kubelet made: remove the deepest directories first.
	for _, p := range clusterHostPaths {
		if c.before.paths[p] || !strings.HasPrefix(p, "/sys/fs/cgroup/") {
			continue
		}
		removeCgroupTree(p)
	}
	for k, v := range c.sysctls {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", k, err))
		}
	}
	for _, p := range clusterHostPaths {
		if !c.before.paths[p] && !strings.HasPrefix(p, "/sys/") {
			_ = os.RemoveAll(p)
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, err)
	}
	if c.lock != nil {
		_ = os.Remove(clusterLock)
		_ = c.lock.Close() // releases the lock
	}
	return errors.Join(errs...)
}

// sweepIptables deletes the rules and chains that were not there before: what kube-proxy's
// --cleanup, the kubelet and the CNI plugins left. Rules first, then the emptied chains.
// With dropTables, the tables that were not there before and are empty now go too.
func sweepIptables(before, now *hostState, dropTables bool) error {
	var errs []error
	var rules, chains []string
	// Only what kube-proxy, the kubelet and the CNI plugins write: KUBE-* and CNI-* chains
	// and rules, and the rules that name our bridge or pod range.
	ours := func(k string) bool {
		for _, mark := range []string{"KUBE-", "CNI-", clusterBridge, clusterPodCIDR} {
			if strings.Contains(k, mark) {
				return true
			}
		}
		return false
	}
	for k := range now.iptables {
		if !before.iptables[k] && ours(k) && !strings.HasSuffix(k, " *table") {
			if strings.Contains(k, " -A ") {
				rules = append(rules, k)
			} else {
				chains = append(chains, k)
			}
		}
	}
	for _, k := range rules {
		parts := strings.SplitN(k, " ", 3)
		tool := strings.TrimSuffix(parts[0], "-save")
		args := append([]string{"-w", "-t", parts[1], "-D"}, splitRule(strings.TrimPrefix(parts[2], "-A "))...)
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, out))
		}
	}
	for _, flag := range []string{"-F", "-X"} {
		for _, k := range chains {
			parts := strings.SplitN(k, " ", 3)
			tool := strings.TrimSuffix(parts[0], "-save")
			_ = exec.Command(tool, "-w", "-t", parts[1], flag, strings.TrimPrefix(parts[2], ":")).Run()
		}
	}
	// Tables iptables-nft created for kube-proxy and the CNI plugins, now empty: nft removes
	// them (iptables cannot), so the ruleset is as it was, not merely rule-free.
	for k := range now.iptables {
		if !dropTables || before.iptables[k] || !strings.HasSuffix(k, " *table") {
			continue
		}
		parts := strings.SplitN(k, " ", 3)
		family := map[string]string{"iptables-save": "ip", "ip6tables-save": "ip6"}[parts[0]]
		if out, err := exec.Command("nft", "delete", "table", family, parts[1]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table %s %s (install nftables: make prereqs): %w: %s", family, parts[1], err, out))
		}
	}
	return errors.Join(errs...)
}

// splitRule splits an iptables-save rule into arguments, keeping "quoted strings" whole and
// unescaping \" inside them, as the CNI plugins' comments have.
func splitRule(rule string) []string {
	var args []string
	var cur strings.Builder
	quoted, escaped := false, false
	for _, r := range rule {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quoted:
			escaped = true
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				args = append(args, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		args = append(args, cur.String())
	}
	return args
}

// Leftovers lists what the cluster left on the host after Close: it should be empty.
func (c *Cluster) Leftovers() ([]string, error) {
	now, err := captureHostState(c.Dir)
	if err != nil {
		return nil, err
	}
	return c.before.diff(now), nil
}

// sweepStale removes what a killed run left, found by the names only this harness uses:
// processes whose command line or root filesystem is under a /tmp/tev-k8s-* directory (the
// shims and the pods' containers), mounts there, the bridge and its veths, kube-proxy's
// rules, and the directories. What that run changed in sysctls is not known any more.
func sweepStale(kubeProxy string) error {
	var errs []error
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "tev-k8s-*"))
	if len(dirs) == 0 {
		return nil
	}
	under := func(path string) bool {
		for _, d := range dirs {
			if strings.Contains(path, d+"/") {
				return true
			}
		}
		return false
	}
	killMatching(func(cmdline, rootfs, _ string) bool { return under(cmdline) || under(rootfs) })
	errs = append(errs, unmountUnder(dirs))
	if links, err := linkNames(); err == nil && slices.Contains(links, clusterBridge) {
		errs = append(errs, deleteBridge())
	}
	if out, err := exec.Command(kubeProxy, "--cleanup").CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("kube-proxy --cleanup: %w: %s", err, out))
	}
	// The kubelet's chains and the CNI plugins' rules, which kube-proxy does not own.
	errs = append(errs, sweepIptables(&hostState{iptables: map[string]bool{}}, &hostState{iptables: captureIptables()}, false))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	// Last, once the killed processes are reaped: the kubepods cgroups, now empty (rmdir
	// refuses a cgroup with processes in it).
	for _, p := range clusterHostPaths {
		if strings.HasPrefix(p, "/sys/fs/cgroup/") {
			removeCgroupTree(p)
		}
	}
	return errors.Join(errs...)
}

// removeCgroupTree removes a cgroup directory and its children, deepest first.
func removeCgroupTree(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
}

// killMatching SIGKILLs every process (but this one) whose command line, root directory or
// cgroups match, then waits, up to 10 s, until they are gone, so that their mounts can go.
func killMatching(match func(cmdline, rootfs, cgroup string) bool) {
	var killed []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(p + "/cmdline")
		cgroup, _ := os.ReadFile(p + "/cgroup")
		rootfs, _ := os.Readlink(p + "/root")
		if match(string(cmdline), rootfs, string(cgroup)) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, p)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); len(killed) > 0 && time.Now().Before(deadline); {
		if _, err := os.Stat(killed[0]); err != nil {
			killed = killed[1:]
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unmountUnder lazily unmounts every mount below one of dirs, deepest first.
func unmountUnder(dirs []string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) <= 4 {
			continue
		}
		for _, d := range dirs {
			if strings.HasPrefix(f[4], d+"/") {
				mounts = append(mounts, f[4])
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// deleteBridge deletes the pods' veths still on our bridge, then the bridge; no other link
// is ours.
func deleteBridge() error {
	veths, _ := linkNames("master", clusterBridge)
	var errs []error
	for _, l := range append(veths, clusterBridge) {
		if out, err := exec.Command("ip", "link", "delete", l).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link delete %s: %w: %s", l, err, out))
		}
	}
	return errors.Join(errs...)
}

// linkNames lists the network links `ip link show` prints for filter (e.g. "master", "br0").
func linkNames(filter ...string) ([]string, error) {
	out, err := exec.Command("ip", append([]string{"-o", "link", "show"}, filter...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("ip link show: %w", err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return names, nil
}

// captureIptables reads both families' ruleset as "<tool> <table> <*table | :chain | -A rule>".
func captureIptables() map[string]bool {
	set := map[string]bool{}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(tool).Output()
		if err != nil {
			continue // no IPv6 tables on this machine: nothing to leave behind there
		}
		table := ""
		for _, l := range strings.Split(string(out), "\n") {
			switch {
			case strings.HasPrefix(l, "*"):
				table = l[1:]
				set[tool+" "+table+" *table"] = true
			case strings.HasPrefix(l, ":"):
				set[tool+" "+table+" "+strings.Fields(l)[0]] = true
			case strings.HasPrefix(l, "-A "):
				set[tool+" "+table+" "+l] = true
			}
		}
	}
	return set
}
