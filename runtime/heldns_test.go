package runtime

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountNSHeld lists the mount namespaces the monitor holds open.
func mountNSHeld(t *testing.T, monitor int) []string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(monitor) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "mnt:[") {
			out = append(out, l)
		}
	}
	return out
}

// The monitor holds a running container's mount namespace (so that its
// exit is not held up by the namespace's teardown, heldns_linux.go) and
// lets it go once the container exited: none is left held after a stop,
// whatever the number of runs (a leak would keep every container's mounts
// alive).
func TestMountNamespaceLetGo(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	s := testSpec(t, "sleep", "30")
	if _, err := r.Run(ctx, "held", CreateOptions{Spec: s}); err != nil {
		t.Fatal(err)
	}
	monitor := monitorPid(t, r)
	ns, err := os.Readlink("/proc/" + strconv.Itoa(mustState(t, r, "held").Pid) + "/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	if held := mountNSHeld(t, monitor); len(held) != 1 || held[0] != ns {
		t.Fatalf("the monitor holds %v, want the container's %s", held, ns)
	}
	if err := r.Stop(ctx, "held", syscall.SIGKILL, time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		st := runToEnd(t, r, "run"+strconv.Itoa(i), CreateOptions{Spec: testSpec(t, "true")})
		if st.ExitCode != 0 {
			t.Fatalf("run %d: exit %d", i, st.ExitCode)
		}
	}
	var held []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if held = mountNSHeld(t, monitor); len(held) == 0 {
			return
		}
	}
	t.Fatalf("mount namespaces still held after every container exited: %v", held)
}
