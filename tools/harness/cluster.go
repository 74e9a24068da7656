package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClusterBins are the programs a single-node cluster runs: the Kubernetes binaries of
// tools/kube/build.sh and containerd's of tools/containerd/build.sh. runc, the CNI plugins,
// etcd and iptables come from Debian (`make prereqs`).
type ClusterBins struct {
	KubeDir       string // kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl
	ContainerdDir string // containerd, ctr, containerd-shim-runc-v2
}

// Cluster is a real single-node Kubernetes cluster on this machine: etcd, the control plane,
// containerd with runc, a kubelet, kube-proxy in iptables mode and a bridge CNI network. Pods
// really run, in their own network namespaces, from images imported into containerd.
type Cluster struct {
	Kubeconfig string // cluster-admin
	Server     string
	NodeName   string
	NodeIP     string
	Dir        string

	bins       ClusterBins
	containerd string // containerd's socket
	pki        *clusterPKI
	before     *hostState
	sysctls    map[string]string
	kubelet    *Process
	procs      []*Process // in start order
	closed     bool
	lock       *os.File // held while the cluster exists
}

// The cluster's address plan. The pod range is a private /24 on a bridge of our own name, so
// teardown removes exactly what we made.
const (
	clusterServiceCIDR = "10.96.0.0/16"
	clusterDNSIP       = "10.96.0.10"
	clusterPodCIDR     = "10.244.0.0/24"
	clusterBridge      = "taskevents0"
	clusterDomain      = "cluster.local"
	clusterLock        = "/tmp/taskevents-cluster.lock"
)

// sysctls the cluster needs (routing between the bridge and the node, bridged traffic through
// iptables for Service hairpins) or that the kubelet sets on start; all are restored on Close.
var clusterSysctls = []string{
	"net/ipv4/ip_forward",
	"net/bridge/bridge-nf-call-iptables",
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// StartCluster brings up the cluster and waits until the node is Ready and pods can be
// created. Close tears it down (the harness calls it too, as a safety net) and Leftovers
// reports anything it failed to remove.
func (h *Harness) StartCluster(ctx context.Context, bins ClusterBins) (*Cluster, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the cluster needs root: the kubelet, containerd and CNI create cgroups, mounts and network namespaces")
	}
	for _, tool := range []string{"etcd", "runc", "iptables", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed: run `make prereqs`", tool)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		return nil, errors.New("the CNI plugins are not installed: run `make prereqs` (containernetworking-plugins)")
	}
	nodeIP, err := hostIP()
	if err != nil {
		return nil, err
	}
	// One cluster per machine: a second would share the bridge, the pod range, the kubepods
	// cgroups and kube-proxy's chains with the first, and break both.
	_, statErr := os.Stat(clusterLock)
	lock, err := os.OpenFile(clusterLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("another taskevents cluster is running on this machine (%s is locked): wait for it to finish", clusterLock)
	}
	if statErr == nil {
		// The lock file outlived its holder: a run was killed before its teardown.
		if err := sweepStale(filepath.Join(bins.KubeDir, "kube-proxy")); err != nil {
			fmt.Fprintf(h.Sink, "[cluster] cleaning up after a killed run: %v\n", err)
		}
	}
	// Short paths: containerd and its shims put unix sockets under these directories.
	dir, err := os.MkdirTemp("", "tev-k8s-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, NodeName: "taskevents-node", NodeIP: nodeIP, bins: bins, lock: lock,
		containerd: filepath.Join(dir, "containerd.sock"), sysctls: map[string]string{}}
	if c.before, err = captureHostState(dir); err != nil {
		return nil, err
	}
	// A safety net for a failed start; a test calls Close itself, while the processes still run.
	h.onClose(func() error { return c.Close() })
	for _, k := range clusterSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			c.sysctls[k] = strings.TrimSpace(string(v))
		}
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"} {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte("1"), 0o644); err != nil {
			return nil, fmt.Errorf("set %s: %w", k, err)
		}
	}

	if c.pki, err = newClusterPKI(filepath.Join(dir, "pki")); err != nil {
		return nil, err
	}
	if err := c.startControlPlane(ctx, h); err != nil {
		return nil, err
	}
	if err := c.startContainerd(ctx, h); err != nil {
		return nil, err
	}
	if err := c.startNode(ctx, h); err != nil {
		return nil, err
	}
	// The kubelet registers the node first; Ready follows once the CNI config is loaded.
	// The default ServiceAccount too: until the controller-manager makes it, the API
	// server refuses every pod in the namespace.
	err = Poll(ctx, 2*time.Minute, 500*time.Millisecond, func(ctx context.Context) error {
		ready, err := c.Kubectl(ctx, "get", "node", c.NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		switch {
		case err != nil:
			return err
		case ready != "True":
			return fmt.Errorf("node Ready is %q", ready)
		}
		_, err = c.Kubectl(ctx, "get", "serviceaccount", "default", "-n", "default")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("the node never became Ready: %w\nkubelet:\n%s", err, c.kubelet.Tail(30))
	}
	return c, nil
}

func (c *Cluster) startControlPlane(ctx context.Context, h *Harness) error {
	etcd, etcdURL, err := h.startEtcd(ctx, "etcd", c.Dir)
	if etcd != nil {
		c.procs = append(c.procs, etcd)
	}
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	c.Server = fmt.Sprintf("https://%s:%d", c.NodeIP, port)
	p := c.pki
	serving, servingKey, err := p.issue("apiserver", "kube-apiserver", nil,
		c.NodeIP, "127.0.0.1", "10.96.0.1", "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc."+clusterDomain)
	if err != nil {
		return err
	}
	kubeletClient, kubeletClientKey, err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"})
	if err != nil {
		return err
	}
	saKey := p.path("sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return err
	}
	if c.Kubeconfig, err = p.kubeconfig("admin", c.Server, "kubernetes-admin", "system:masters"); err != nil {
		return err
	}
	kcm, err := p.kubeconfig("controller-manager", c.Server, "system:kube-controller-manager")
	if err != nil {
		return err
	}
	sched, err := p.kubeconfig("scheduler", c.Server, "system:kube-scheduler")
	if err != nil {
		return err
	}
	kube := func(name string) string { return filepath.Join(c.bins.KubeDir, name) }
	// The flags kubeadm's static pod manifests give each component, minus what a single
	// throwaway node does not need (front proxy, leader election, encryption at rest).
	if _, err := c.start(h, "kube-apiserver", environ(), kube("kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", c.NodeIP, "--advertise-address", c.NodeIP, "--secure-port", strconv.Itoa(port),
		"--tls-cert-file", serving, "--tls-private-key-file", servingKey,
		"--client-ca-file", p.CAFile(),
		"--kubelet-client-certificate", kubeletClient, "--kubelet-client-key", kubeletClientKey,
		"--kubelet-preferred-address-types", "InternalIP",
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc."+clusterDomain,
		"--service-cluster-ip-range", clusterServiceCIDR,
		"--allow-privileged=true",
	); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := c.waitAPI(wctx); err != nil {
		return err
	}
	kcmPort, err := FreePort()
	if err != nil {
		return err
	}
	if _, err := c.start(h, "kube-controller-manager", environ(), kube("kube-controller-manager"),
		"--kubeconfig", kcm, "--authentication-kubeconfig", kcm, "--authorization-kubeconfig", kcm,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(kcmPort),
		"--service-account-private-key-file", saKey, "--root-ca-file", p.CAFile(),
		"--use-service-account-credentials=true", "--leader-elect=false",
		"--cluster-name", "taskevents", "--service-cluster-ip-range", clusterServiceCIDR,
	); err != nil {
		return err
	}
	schedPort, err := FreePort()
	if err != nil {
		return err
	}
	_, err = c.start(h, "kube-scheduler", environ(), kube("kube-scheduler"),
		"--kubeconfig", sched, "--authentication-kubeconfig", sched, "--authorization-kubeconfig", sched,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(schedPort), "--leader-elect=false")
	return err
}

// waitAPI polls kubectl until the API server answers /readyz as cluster-admin.
func (c *Cluster) waitAPI(ctx context.Context) error {
	err := Poll(ctx, 0, 300*time.Millisecond, func(ctx context.Context) error {
		_, err := c.Kubectl(ctx, "get", "--raw", "/readyz")
		return err
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver never became ready: %w", err)
	}
	return nil
}

func (c *Cluster) startContainerd(ctx context.Context, h *Harness) error {
	root, state := filepath.Join(c.Dir, "containerd"), filepath.Join(c.Dir, "run")
	cniConf := filepath.Join(c.Dir, "cni")
	for _, d := range []string{root, state, cniConf} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// One bridge network for the node, as kubeadm guides set up with the reference plugins:
	// pods get addresses from host-local on our /24 and reach the outside through masquerade.
	// host-local keeps its leases under our directory, not /var/lib/cni.
	network := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "taskevents",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, clusterBridge, clusterPodCIDR, filepath.Join(c.Dir, "cni-ipam"))
	if err := os.WriteFile(filepath.Join(cniConf, "10-taskevents.conflist"), []byte(network), 0o600); err != nil {
		return err
	}
	// containerd 2's version-3 config: everything it owns lives under c.Dir, network
	// namespaces included, so teardown can find and remove it. The sandbox image is the pause
	// image built here; nothing is ever pulled.
	config := fmt.Sprintf(`version = 3
root = %q
state = %q
[grpc]
  address = %q
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = 'registry.k8s.io/pause:3.10.2'
[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # Root on these machines lacks CAP_SYS_RESOURCE, so the kernel refuses to lower an OOM
  # score (runc fails with "can't get final child's PID"). As for rootless containerd, keep
  # each container's oom_score_adj at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = %q
      Root = %q
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = %q
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
`, root, state, c.containerd, mustLookPath("runc"), filepath.Join(state, "runc"), cniConf)
	cfg := filepath.Join(c.Dir, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return err
	}
	// The shim is found on PATH, next to containerd.
	env := environ("PATH=" + c.bins.ContainerdDir + ":" + os.Getenv("PATH"))
	if _, err := c.start(h, "containerd", env, filepath.Join(c.bins.ContainerdDir, "containerd"), "--config", cfg); err != nil {
		return err
	}
	err := Poll(ctx, 30*time.Second, 200*time.Millisecond, func(ctx context.Context) error {
		_, err := c.Ctr(ctx, "version")
		return err
	})
	if err != nil {
		return fmt.Errorf("containerd never answered on its socket: %w", err)
	}
	return nil
}

func (c *Cluster) startNode(ctx context.Context, h *Harness) error {
	p := c.pki
	// The node's identity, as the Node authorizer expects: system:node:<name> in system:nodes.
	kubeletKubeconfig, err := p.kubeconfig("kubelet", c.Server, "system:node:"+c.NodeName, "system:nodes")
	if err != nil {
		return err
	}
	proxyKubeconfig, err := p.kubeconfig("kube-proxy", c.Server, "system:kube-proxy")
	if err != nil {
		return err
	}
	serving, servingKey, err := p.issue("kubelet-serving", "system:node:"+c.NodeName, []string{"system:nodes"}, c.NodeIP, c.NodeName)
	if err != nil {
		return err
	}
	// kube-proxy authenticates as system:kube-proxy; kubeadm binds it to this ClusterRole.
	if _, err := c.Kubectl(ctx, "create", "clusterrolebinding", "kubeadm:node-proxier",
		"--clusterrole=system:node-proxier", "--user=system:kube-proxy"); err != nil {
		return err
	}
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return err
		}
	}
	kubeletDir := filepath.Join(c.Dir, "kubelet")
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These machines have cgroup v1 only; Kubernetes 1.35+ refuses it unless told (KEP-5573).
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
clusterDNS: [%s]
clusterDomain: %s
podLogsDir: %s
failSwapOn: false
resolvConf: /etc/resolv.conf
# A shared build machine: never evict or garbage-collect the images built here because the
# disk is busy.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, c.containerd, c.NodeIP, ports[0], ports[1], serving, servingKey, p.CAFile(), clusterDNSIP, clusterDomain,
		filepath.Join(c.Dir, "pod-logs"))
	kubeletConfig := filepath.Join(c.Dir, "kubelet.yaml")
	if err := os.WriteFile(kubeletConfig, []byte(config), 0o600); err != nil {
		return err
	}
	env := environ("PATH=" + c.bins.ContainerdDir + ":" + os.Getenv("PATH"))
	if c.kubelet, err = c.start(h, "kubelet", env, filepath.Join(c.bins.KubeDir, "kubelet"),
		"--config", kubeletConfig, "--kubeconfig", kubeletKubeconfig, "--root-dir", kubeletDir,
		"--hostname-override", c.NodeName, "--node-ip", c.NodeIP,
	); err != nil {
		return err
	}
	proxyConfig := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %s}
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
# Leave the host's conntrack limits and route_localnet alone: nothing here needs them.
conntrack: {maxPerCore: 0}
iptables: {localhostNodePorts: false}
nodePortAddresses: [primary]
`, proxyKubeconfig, clusterPodCIDR, c.NodeName, c.NodeIP, ports[2], ports[3])
	proxyCfg := filepath.Join(c.Dir, "kube-proxy.yaml")
	if err := os.WriteFile(proxyCfg, []byte(proxyConfig), 0o600); err != nil {
		return err
	}
	_, err = c.start(h, "kube-proxy", environ(), filepath.Join(c.bins.KubeDir, "kube-proxy"), "--config", proxyCfg)
	return err
}

func (c *Cluster) start(h *Harness, name string, env []string, bin string, args ...string) (*Process, error) {
	p, err := h.start(name, env, bin, args...)
	if err == nil {
		c.procs = append(c.procs, p)
	}
	return p, err
}

// Kubectl runs the pinned kubectl as cluster-admin and returns its standard output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, nil, filepath.Join(c.bins.KubeDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// Ctr runs containerd's ctr against the node's containerd, in the namespace the CRI uses.
func (c *Cluster) Ctr(ctx context.Context, args ...string) (string, error) {
	return run(ctx, nil, filepath.Join(c.bins.ContainerdDir, "ctr"), append([]string{"--address", c.containerd, "--namespace", "k8s.io"}, args...)...)
}

// ImportImage imports an image tarball into the node's containerd, as a user without a
// registry would (`ctr -n k8s.io images import`).
func (c *Cluster) ImportImage(ctx context.Context, tar string) error {
	_, err := c.Ctr(ctx, "images", "import", "--all-platforms", tar)
	return err
}

// KubeDir is the directory of the pinned Kubernetes binaries, kubectl among them.
func (c *Cluster) KubeDir() string { return c.bins.KubeDir }

// ContainerPID is the host PID of a running container's first process, found the way an
// operator on the node would: the pod's containerID, then containerd's task list.
func (c *Cluster) ContainerPID(ctx context.Context, namespace, pod, container string) (int, error) {
	id, err := c.Kubectl(ctx, "-n", namespace, "get", "pod", pod, "-o",
		fmt.Sprintf(`jsonpath={.status.containerStatuses[?(@.name=="%s")].containerID}`, container))
	if err != nil {
		return 0, err
	}
	id = strings.TrimPrefix(strings.TrimSpace(id), "containerd://")
	tasks, err := c.Ctr(ctx, "tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(tasks, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == id {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no running task for %s/%s container %s (%q)", pod, container, container, id)
}

// Env is the environment for a tool (helm, kubectl) that should talk to this cluster.
func (c *Cluster) Env() []string { return environ("KUBECONFIG=" + c.Kubeconfig) }

func run(ctx context.Context, env []string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func mustLookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return name
	}
	return p
}

// hostIP is the node's address: the source address of the default route, reachable from
// pods (loopback is not: each pod has its own).
func hostIP() (string, error) {
	conn, err := net.Dial("udp4", "203.0.113.1:9") // TEST-NET-3 via the default route; a UDP "connect" sends nothing
	if err != nil {
		return "", fmt.Errorf("find the node's address (no default route?): %w", err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).IP.String(), nil
}
