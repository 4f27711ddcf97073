package runtime

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func withoutNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) {
	var keep []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != typ {
			keep = append(keep, ns)
		}
	}
	s.Linux.Namespaces = keep
}

func nsOf(t *testing.T, pid int, typ string) string {
	t.Helper()
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + typ)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func hostMountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// TestHostMountNamespace: a spec without a mount namespace runs in the
// host's (as runc allows): same mount namespace as the caller, the rootfs
// as its root (chroot), its mounts visible on the host while it runs and
// all gone after delete; exec lands in the same root.
func TestHostMountNamespace(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	s := testSpec(t, "sh", "-c", "grep -c ^app: /etc/passwd; ls /proc/self/fd >/dev/null && echo proc-ok; sleep 30")
	withoutNamespace(s, specs.MountNamespace)
	if _, err := r.Run(ctx, "hostmnt", CreateOptions{Spec: s}); err != nil {
		t.Fatal(err)
	}
	st := mustState(t, r, "hostmnt")
	if got, want := nsOf(t, st.Pid, "mnt"), nsOf(t, os.Getpid(), "mnt"); got != want {
		t.Fatalf("container mount namespace %s, host's %s", got, want)
	}
	root := r.hostRoot("hostmnt")
	if m := hostMountsUnder(t, root); len(m) < 3 { // the root, /proc, /dev...
		t.Fatalf("mounts under %s on the host: %v", root, m)
	}
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !strings.Contains(out, "proc-ok"); time.Sleep(20 * time.Millisecond) {
		out = logText(t, r, "hostmnt")
	}
	if out != "1\nproc-ok\n" {
		t.Fatalf("container saw %q", out)
	}
	code, err := r.Exec(ctx, "hostmnt", &specs.Process{Args: []string{"sh", "-c", "grep -q ^app: /etc/passwd && test -e /bin/busybox"}}, ExecOptions{})
	if err != nil || code != 0 {
		t.Fatalf("exec in the container's root: %d %v", code, err)
	}
	if err := r.Delete(ctx, "hostmnt", true); err != nil {
		t.Fatal(err)
	}
	if m := hostMountsUnder(t, root); len(m) > 0 {
		t.Fatalf("mounts left on the host after delete: %v", m)
	}
	if m := hostMountsUnder(t, busyboxRootfs(t)); len(m) > 0 {
		t.Fatalf("mounts on the bundle rootfs: %v", m)
	}
}

// TestJoinMountNamespace: a mount namespace given by path is joined (the
// container's is the owner's) and the container runs in its rootfs there.
func TestJoinMountNamespace(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	owner := exec.Command("unshare", "--mount", "--propagation", "private", "--fork", "sleep", "60")
	owner.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := owner.Start(); err != nil {
		t.Skipf("unshare: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(-owner.Process.Pid, syscall.SIGKILL); owner.Wait() })
	ownerNS := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ownerNS = nsOf(t, owner.Process.Pid, "mnt"); ownerNS != nsOf(t, os.Getpid(), "mnt") {
			break
		}
	}
	if ownerNS == nsOf(t, os.Getpid(), "mnt") {
		t.Fatal("unshare did not make a mount namespace")
	}
	s := testSpec(t, "sh", "-c", "grep -c ^app: /etc/passwd; sleep 30")
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.MountNamespace {
			s.Linux.Namespaces[i].Path = "/proc/" + strconv.Itoa(owner.Process.Pid) + "/ns/mnt"
		}
	}
	if _, err := r.Run(ctx, "joinmnt", CreateOptions{Spec: s}); err != nil {
		t.Fatal(err)
	}
	st := mustState(t, r, "joinmnt")
	if got := nsOf(t, st.Pid, "mnt"); got != ownerNS {
		t.Fatalf("container mount namespace %s, want the owner's %s", got, ownerNS)
	}
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && out == ""; time.Sleep(20 * time.Millisecond) {
		out = logText(t, r, "joinmnt")
	}
	if out != "1\n" {
		t.Fatalf("container saw %q", out)
	}
	// Nothing of it is mounted in ours.
	if m := hostMountsUnder(t, busyboxRootfs(t)); len(m) > 0 {
		t.Fatalf("mounts on the host: %v", m)
	}
	code, err := r.Exec(ctx, "joinmnt", &specs.Process{Args: []string{"sh", "-c", "grep -q ^app: /etc/passwd"}}, ExecOptions{})
	if err != nil || code != 0 {
		t.Fatalf("exec: %d %v", code, err)
	}
}
