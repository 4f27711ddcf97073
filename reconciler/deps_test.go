package reconciler

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBoundary keeps the reconciler away from the machine: it may
// reach state and driver, never the runtime, network, store, netlink,
// fsnotify or git code, not even transitively.
func TestImportBoundary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/berth-dev/berth/runtime",
		"github.com/berth-dev/berth/network",
		"github.com/berth-dev/berth/store",
		"github.com/berth-dev/berth/volume",
		"github.com/berth-dev/berth/builder",
		"github.com/berth-dev/berth/driver/native",
		"github.com/berth-dev/berth/watch",
		"github.com/berth-dev/berth/gitops",
		"github.com/vishvananda/",
		"github.com/fsnotify/",
		"github.com/go-git/",
		"github.com/opencontainers/runc",
		"github.com/containerd/",
		"github.com/google/nftables",
		"github.com/mdlayher/",
	}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, strings.TrimSuffix(f, "/")+"/") {
				bad = append(bad, pkg)
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("reconciler depends on %s", strings.Join(bad, ", "))
	}
	if !strings.Contains(string(out), "github.com/berth-dev/berth/driver\n") {
		t.Errorf("go list output does not look like a dependency list:\n%s", out)
	}
}
