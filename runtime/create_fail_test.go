package runtime

import (
	"os"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestFailedCreateLeavesNothing: creates that fail at each stage (cgroup
// settings, namespace join, init setup, exec lookup) leave no state,
// cgroup or process behind.
func TestFailedCreateLeavesNothing(t *testing.T) {
	r := newTestRuntime(t)
	weight := uint16(500)
	cases := map[string]func(*specs.Spec){
		"badexec":   func(s *specs.Spec) { s.Process.Args = []string{"/no/such/binary"} },
		"badcgroup": func(s *specs.Spec) { s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{Weight: &weight} },
		"badjoin": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces[:0:0], specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/self/ns/net"}, specs.LinuxNamespace{Type: specs.MountNamespace})
		},
		"badmount": func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "/no/such/dir", Options: []string{"bind"}})
		},
		"badcap": func(s *specs.Spec) { s.Process.Capabilities.Bounding = []string{"CAP_NOPE"} },
	}
	for id, mutate := range cases {
		s := testSpec(t, "true")
		mutate(s)
		if _, err := r.Create(ctxT(t, 20*time.Second), id, CreateOptions{Spec: s}); err == nil {
			t.Errorf("%s: create succeeded", id)
			continue
		}
		checkNoResidue(t, r, id)
		if _, err := os.Stat(r.dir(id)); !os.IsNotExist(err) {
			t.Errorf("%s: directory left", id)
		}
	}
}

func TestSysctlMustBeNamespaced(t *testing.T) {
	for k, ok := range map[string]bool{"kernel.msgmax": true, "net.ipv4.ip_forward": true, "fs.mqueue.queues_max": true,
		"vm.swappiness": false, "kernel.panic": false, "../kernel.x": false} {
		if err := checkSysctl(k, true); (err == nil) != ok {
			t.Errorf("%s: %v", k, err)
		}
	}
	if checkSysctl("net.ipv4.ip_forward", false) == nil {
		t.Error("net sysctl admitted in the host's network namespace")
	}
}
