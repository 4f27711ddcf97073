package runtime

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroup2Mount finds a cgroup2 mount (the whole /sys/fs/cgroup on a v2
// machine, /sys/fs/cgroup/unified on a hybrid one like this).
func cgroup2Mount(t *testing.T) string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Fields(sc.Text()); len(fl) > 2 && fl[2] == "cgroup2" {
			return fl[1]
		}
	}
	t.Skip("no cgroup2 mount")
	return ""
}

func TestDeviceFilterRejectsBadRules(t *testing.T) {
	if _, err := deviceFilter([]specs.LinuxDeviceCgroup{{Type: "x", Access: "r"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("type x: %v", err)
	}
	if _, err := deviceFilter([]specs.LinuxDeviceCgroup{{Type: "c", Access: "rq"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("access rq: %v", err)
	}
}

// TestCgroupV2DeviceFilter runs a container with the v2 driver forced on
// this machine's cgroup2 mount: only the eBPF program can refuse devices
// (the container stays in the host's v1 device cgroup, which allows all).
func TestCgroupV2DeviceFilter(t *testing.T) {
	needRoot(t)
	t.Setenv(EnvCgroup2Root, cgroup2Mount(t)) // before the monitor starts: it inherits it
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	s := testSpec(t, "sh", "-c", `
		try() { if "$@" 2>/dev/null; then echo "$*: ok"; else echo "$*: denied"; fi; }
		try sh -c 'head -c 1 /dev/zero >/dev/null'
		try sh -c 'echo x >/dev/null'
		try mknod /tmp/sda b 8 0
		try mknod /tmp/mem c 1 1
		try mknod /tmp/null2 c 1 3
		try sh -c 'echo x >/tmp/null2'
		try mknod /tmp/tun c 10 200
		try sh -c 'exec 3</tmp/tun'
		try sh -c 'exec 3>/tmp/tun'
		try mknod /tmp/kmsg c 1 11
		try sh -c 'exec 3>/tmp/kmsg'
		mknod /tmp/sdb b 8 16 2>&1 | grep -q "not permitted" && echo eperm || echo other
		sleep 30`)
	// The runtime adds the standard devices (null, zero, tty...) to these.
	dev := func(allow bool, typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Major: &major, Minor: &minor, Access: access}
	}
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		dev(true, "c", 10, 200, "rm"), // tun: no write
		dev(true, "c", 1, 11, "rwm"),  // kmsg: read taken back below
		dev(false, "c", 1, 11, "r"),
	}
	if _, err := r.Run(ctx, "devs", CreateOptions{Spec: s}); err != nil {
		t.Fatal(err)
	}
	st := mustState(t, r, "devs")
	cg, err := openCgroup(st.Cgroup)
	if err != nil || !cg.v2 {
		t.Fatalf("cgroup %+v %v", cg, err)
	}
	ids, err := deviceFilterIDs(cg.dir(""))
	if err != nil || len(ids) != 1 {
		t.Fatalf("programs on %s: %v %v", cg.dir(""), ids, err)
	}
	var out string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out = logText(t, r, "devs"); strings.Count(out, "\n") >= 12 {
			break
		}
	}
	for _, want := range []string{
		"sh -c head -c 1 /dev/zero >/dev/null: ok", "sh -c echo x >/dev/null: ok",
		"mknod /tmp/sda b 8 0: denied", "mknod /tmp/mem c 1 1: denied",
		"mknod /tmp/null2 c 1 3: ok", "sh -c echo x >/tmp/null2: ok",
		"mknod /tmp/tun c 10 200: ok", "sh -c exec 3</tmp/tun: ok", "sh -c exec 3>/tmp/tun: denied",
		"mknod /tmp/kmsg c 1 11: ok", "sh -c exec 3>/tmp/kmsg: ok",
		"eperm",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	// An exec'd process is confined too: kmsg's read was taken back.
	code, err := r.Exec(ctx, "devs", &specs.Process{Args: []string{"sh", "-c", "(exec 3</tmp/kmsg) 2>/dev/null && exit 3; (exec 3>/tmp/kmsg) || exit 4"}}, ExecOptions{})
	if err != nil || code != 0 {
		t.Errorf("exec, /tmp/kmsg: exit %d %v", code, err)
	}

	if err := r.Delete(ctx, "devs", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg.dir("")); !os.IsNotExist(err) {
		t.Fatalf("cgroup %s left: %v", cg.dir(""), err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, err := ebpf.NewProgramFromID(ids[0])
		if err != nil {
			break
		}
		p.Close()
		if time.Now().After(deadline) {
			t.Fatalf("device program %d still loaded after delete", ids[0])
		}
	}
}
