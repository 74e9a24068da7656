package harness

import (
	"slices"
	"testing"
)

func TestSplitRule(t *testing.T) {
	for _, tc := range []struct {
		rule string
		want []string
	}{
		{"KUBE-SERVICES -d 10.96.0.1/32 -p tcp -j KUBE-SVC-X",
			[]string{"KUBE-SERVICES", "-d", "10.96.0.1/32", "-p", "tcp", "-j", "KUBE-SVC-X"}},
		{`CNI-abc -d 10.244.0.0/24 -m comment --comment "name: \"taskevents\" id: \"f00\"" -j ACCEPT`,
			[]string{"CNI-abc", "-d", "10.244.0.0/24", "-m", "comment", "--comment", `name: "taskevents" id: "f00"`, "-j", "ACCEPT"}},
		{`POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
			[]string{"POSTROUTING", "-m", "comment", "--comment", "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING"}},
	} {
		if got := splitRule(tc.rule); !slices.Equal(got, tc.want) {
			t.Errorf("splitRule(%q) = %q, want %q", tc.rule, got, tc.want)
		}
	}
}

func TestHostStateDiff(t *testing.T) {
	set := func(keys ...string) map[string]bool {
		m := map[string]bool{}
		for _, k := range keys {
			m[k] = true
		}
		return m
	}
	before := &hostState{mounts: set("/", "/proc"), netns: set(), links: set("lo", "eth0"),
		iptables: set("iptables-save filter :INPUT"), paths: set(), procs: set()}
	now := &hostState{mounts: set("/", "/proc", "/tmp/tev-k8s-1/run/netns/cni-1"), netns: set("net:[42]"),
		links: set("lo", "eth0", "taskevents0"), iptables: set("iptables-save filter :INPUT", "iptables-save nat :KUBE-SERVICES"),
		paths: set("/var/lib/cni"), procs: set("7 containerd-shim-runc-v2 -address /tmp/tev-k8s-1/containerd.sock")}
	want := []string{
		"iptables iptables-save nat :KUBE-SERVICES",
		"link taskevents0",
		"mount /tmp/tev-k8s-1/run/netns/cni-1",
		"netns net:[42]",
		"path /var/lib/cni",
		"process 7 containerd-shim-runc-v2 -address /tmp/tev-k8s-1/containerd.sock",
	}
	if got := before.diff(now); !slices.Equal(got, want) {
		t.Errorf("diff = %q, want %q", got, want)
	}
	if got := now.diff(now); len(got) != 0 {
		t.Errorf("a state against itself: %q, want nothing", got)
	}
}
