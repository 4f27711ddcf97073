package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// spares lists the warm init children of r's monitor.
func spares(t *testing.T, r *Runtime) []int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if strings.Contains(string(env), "\x00"+envWarm+"=1\x00") && strings.Contains(string(env), envMonitor+"="+r.Root()+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

// waitSpare waits for the spares a create leaves behind (warmDepth of
// them), oldest (lowest pid: the next to be taken) first.
func waitSpare(t *testing.T, r *Runtime) []int {
	t.Helper()
	return waitSpares(t, r, warmDepth)
}

// settled waits until spare pid is in the monitor's pool: it shows in
// /proc as soon as it is exec'd, and joins the pool once its staging
// cgroups (v1) are made (startSpare), a few ms later.
func settled(t *testing.T, pid int) {
	t.Helper()
	if !isCgroupV2() {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
			if strings.Contains(string(b), warmCgroupPrefix) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("spare %d never staged: %s", pid, b)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
}

// waitSpares waits for n spares, oldest first.
func waitSpares(t *testing.T, r *Runtime, n int) []int {
	t.Helper()
	var spare []int
	for deadline := time.Now().Add(5 * time.Second); len(spare) != n && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		spare = spares(t, r)
	}
	if len(spare) != n {
		t.Fatalf("spares: %v, want %d", spare, n)
	}
	slices.Sort(spare)
	return spare
}

// TestWarmInit: after a create the monitor keeps a spare init; the next
// create takes it (its pid is the container's), and the container is as a
// cold one: its own namespaces, its stdio, its console socket, its logs.
// Unused, the spare goes away.
func TestWarmInit(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	if _, err := r.Run(ctx, "w1", CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
		t.Fatal(err)
	}
	spare := waitSpare(t, r)
	v1 := !isCgroupV2()
	cgroupOf := func(pid int) string {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		return string(b)
	}
	// On v1 the spare was born in its staging cgroups (cloned by a
	// monitor thread that moved itself in and back: no pid migration).
	staging := ""
	if v1 {
		staging = stagingOf(t, spare[0])
		for _, ctl := range []string{"pids", "memory", "freezer", "devices", "cpuacct"} {
			if !strings.Contains(cgroupOf(spare[0]), ":"+ctl+":"+staging+"\n") {
				t.Errorf("spare not staged in its %s cgroup %s: %s", ctl, staging, cgroupOf(spare[0]))
			}
		}
		monitorOutside(t, monitorPid(t, r))
	}

	// A terminal container on the spare: the console socket arrives as
	// fd 5 with the config.
	dial, recv := consoleListener(t)
	s := testSpec(t, "sh")
	s.Process.Terminal = true
	sock := dial()
	if _, err := r.Run(ctx, "w2", CreateOptions{Spec: s, ConsoleSocket: sock}); err != nil {
		t.Fatal(err)
	}
	sock.Close()
	master, _ := recv()
	defer master.Close()
	w1, w2 := mustState(t, r, "w1"), mustState(t, r, "w2")
	if w2.Pid != spare[0] {
		t.Fatalf("w2 runs as %d, the spare was %d", w2.Pid, spare[0])
	}
	if v1 {
		// Its staging cgroups became w2's (renamed: none left).
		for _, ctl := range []string{"pids", "memory", "freezer", "devices", "cpuacct"} {
			if !strings.Contains(cgroupOf(w2.Pid), ":"+ctl+":/berth/w2\n") {
				t.Errorf("w2 not in its %s cgroup: %s", ctl, cgroupOf(w2.Pid))
			}
		}
		if left, _ := filepath.Glob("/sys/fs/cgroup/*" + staging); len(left) > 0 {
			t.Errorf("staging cgroups left: %v", left)
		}
	}
	for _, ns := range []string{"net", "pid", "mnt", "uts", "ipc"} {
		a, b, host := nsOf(t, w1.Pid, ns), nsOf(t, w2.Pid, ns), nsOf(t, os.Getpid(), ns)
		if a == b || b == host {
			t.Errorf("%s namespace: w1 %s, w2 %s, host %s", ns, a, b, host)
		}
	}
	converse(t, master, "tty; echo n=$((2+3))\n", "n=5")

	// Logs through the spare's stdio, and the exit code.
	for deadline := time.Now().Add(5 * time.Second); len(spares(t, r)) != warmDepth && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	st := runToEnd(t, r, "w3", CreateOptions{Spec: testSpec(t, "sh", "-c", "echo out; echo err >&2; exit 6")})
	if out := logText(t, r, "w3"); st.ExitCode != 6 || out != "out\nerr\n" && out != "err\nout\n" {
		t.Fatalf("w3: exit %d, log %q", st.ExitCode, out)
	}

	// Unused, the spare goes.
	for deadline := time.Now().Add(warmTTL + 3*time.Second); len(spares(t, r)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("spares left: %v", spares(t, r))
		}
	}
}

// TestWarmInitSeesLaterMounts: a mount made after the spare was cloned
// (here a tmpfs bound into the next container) reaches the spare only by
// propagation; where / is private it does not, and the create must then
// start a cold child rather than give the container the empty directory
// beneath the mount.
func TestWarmInitSeesLaterMounts(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	if _, err := r.Run(ctx, "m1", CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
		t.Fatal(err)
	}
	spare := waitSpare(t, r)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("mounted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := testSpec(t, "sleep", "30")
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: dir, Options: []string{"rbind", "ro"}})
	if _, err := r.Run(ctx, "m2", CreateOptions{Spec: s}); err != nil {
		t.Fatal(err)
	}
	st := mustState(t, r, "m2")
	got, err := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/root/mnt/marker")
	if err != nil || string(got) != "mounted\n" {
		t.Fatalf("the container's /mnt lacks the mount made after the spare (spare %d, container %d): %q %v", spare[0], st.Pid, got, err)
	}
}

// The spare warms encoding/json with a sample config: the sample must
// marshal (or the warm-up does nothing) and decode back whole, which it
// does only if every type in a config got a value and a decoder.
func TestWarmDecoderSample(t *testing.T) {
	var sample initConfig
	fillSample(reflect.ValueOf(&sample).Elem(), map[reflect.Type]bool{})
	if sample.Spec == nil || sample.Spec.Linux == nil || sample.Spec.Linux.Seccomp == nil ||
		len(sample.Spec.Linux.Seccomp.Syscalls) != 1 || len(sample.Spec.Mounts) != 1 || len(sample.Seccomp) != 1 {
		t.Fatalf("sample left parts of a config empty: %+v", sample.Spec)
	}
	b, err := json.Marshal(&sample)
	if err != nil {
		t.Fatalf("sample config does not marshal: %v", err)
	}
	var out initConfig
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("sample config does not decode: %v", err)
	}
	if !reflect.DeepEqual(sample, out) {
		t.Fatalf("sample config changed in a round trip:\n%s", b)
	}
}

// A taken spare's threads all go back to nice 0 (its exec waits for each).
func TestSpareRenice(t *testing.T) {
	needRoot(t)
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := unix.Setpriority(unix.PRIO_PROCESS, cmd.Process.Pid, 19); err != nil {
		t.Fatal(err)
	}
	nice := func() string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		return f[16] // the 19th field of stat
	}
	if n := nice(); n != "19" {
		t.Fatalf("nice before: %s", n)
	}
	(&child{pid: cmd.Process.Pid}).renice()
	if n := nice(); n != "0" {
		t.Fatalf("nice after renice: %s, want 0", n)
	}
}

// dropTextPages leaves far fewer of the binary's read-only pages mapped
// (what the container's exec then tears down). Measured in a fresh process
// (this test binary again, running only this test): in the whole package's
// run, other tests' goroutines fault pages back in meanwhile.
func TestDropTextPages(t *testing.T) {
	if os.Getenv("BERTH_TEST_DROP_TEXT") != "" {
		before := mappedTextKB(t)
		dropTextPages()
		fmt.Printf("mapped %d %d\n", before, mappedTextKB(t))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDropTextPages$")
	cmd.Env = append(os.Environ(), "BERTH_TEST_DROP_TEXT=1", "GOGC=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var before, after int
	i := strings.Index(string(out), "mapped ")
	if i < 0 {
		t.Fatalf("no figures from the child: %s", out)
	}
	fmt.Sscanf(string(out[i:]), "mapped %d %d", &before, &after)
	t.Logf("read-only pages of the binary mapped: %d kB, then %d kB", before, after)
	// What runs between the drop and the count (reading smaps, the Go
	// runtime) faults some back in (from 0.9 to 2.7 MB of 5.8 MB dropped
	// in runs here); doing nothing would leave them all mapped.
	if before < 1024 || after > before-512 {
		t.Fatalf("dropTextPages left %d of %d kB mapped", after, before)
	}
}

func mappedTextKB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	exe, inExe, kb := "", false, 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.Contains(f[0], "-") {
			path := strings.Join(f[5:], " ")
			if exe == "" {
				exe = path
			}
			inExe = path == exe && !strings.Contains(f[1], "w")
			continue
		}
		if inExe && len(f) == 3 && f[0] == "Rss:" {
			n, _ := strconv.Atoi(f[1])
			kb += n
		}
	}
	return kb
}

// A child whose highest fd sits just below the sealed copy's number must
// still exec the copy. Go's child setup moves its error pipe to that
// highest fd plus one: a copy named by its number only was overwritten
// there, and the exec failed ("fork/exec /proc/self/fd/200: permission
// denied", about one `up` of 50 services in ten).
func TestChildExecsSealedCopyWhateverItsFds(t *testing.T) {
	needRoot(t)
	self, err := sealedSelf()
	if err != nil {
		t.Fatal(err)
	}
	const below = 900 // a number this test process leaves free
	if err := unix.Dup3(int(self.Fd()), below+1, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	selfExe.mu.Lock()
	saved := selfExe.file
	selfExe.file = os.NewFile(below+1, "sealed-copy-high")
	selfExe.mu.Unlock()
	defer func() {
		selfExe.mu.Lock()
		selfExe.file.Close()
		selfExe.file = saved
		selfExe.mu.Unlock()
	}()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if err := unix.Dup3(int(null.Fd()), below, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	stdio := os.NewFile(below, "stdio-below-the-copy")
	defer stdio.Close()
	c, err := startChild(childInit, nsPlan{}, []*os.File{stdio, stdio, stdio}, nil, nil)
	if err != nil {
		t.Fatalf("child with fds up to %d, sealed copy at %d: %v", below, below+1, err)
	}
	c.sync.Close() // it reads EOF for its config and exits
	c.proc.Wait()
}

// TestWarmInitJoinsNetworkNamespace: a container that joins a network
// namespace by path (every container of a compose project joins its
// sandbox's) is served by a spare too, which joins the namespace on the
// thread that mounts sysfs and execs: the container sees the namespace's
// links in /sys/class/net, as a cold one does.
func TestWarmInitJoinsNetworkNamespace(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	if _, err := r.Run(ctx, "netowner", CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
		t.Fatal(err)
	}
	path := "/proc/" + strconv.Itoa(mustState(t, r, "netowner").Pid) + "/ns/net"
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "warmjoin0"}}); err != nil {
		t.Fatal(err)
	}
	joining := func(args ...string) *specs.Spec {
		s := testSpec(t, args...)
		for i, n := range s.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				s.Linux.Namespaces[i].Path = path
			}
		}
		return s
	}
	show := "ls /sys/class/net; readlink /proc/self/ns/net"
	runToEnd(t, r, "cold", CreateOptions{Spec: joining("sh", "-c", show)})
	want, _ := os.Readlink(path)
	shows := func(out string) bool {
		return strings.Contains(out, "warmjoin0\n") && strings.HasSuffix(out, want+"\n")
	}
	if out, st := logText(t, r, "cold"), mustState(t, r, "cold"); st.ExitCode != 0 || !shows(out) {
		t.Errorf("cold container (exit %d) in %s: %q", st.ExitCode, want, out)
	}
	// The warm one stays up until its output is read: one that exited
	// before Run answered would be reported stopped, with no pid to compare.
	spare := waitSpare(t, r)
	st, err := r.Run(ctx, "warm", CreateOptions{Spec: joining("sh", "-c", show+"; exec sleep 30")})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != spare[0] {
		t.Fatalf("the joining container ran as %d, not on the spare %d", st.Pid, spare[0])
	}
	var out string
	for deadline := time.Now().Add(10 * time.Second); !shows(out) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out = logText(t, r, "warm")
	}
	if !shows(out) {
		t.Errorf("warm container in %s: %q", want, out)
	}
	if err := r.Kill(ctx, "warm", syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Wait(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	// A spare serves a plan joining no network namespace too (the host's,
	// network_mode: host), in the host's namespace.
	waitSpare(t, r)
	host := testSpec(t, "readlink", "/proc/self/ns/net")
	host.Linux.Namespaces = slices.DeleteFunc(host.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
	runToEnd(t, r, "host", CreateOptions{Spec: host})
	own, _ := os.Readlink("/proc/self/ns/net")
	if out := logText(t, r, "host"); out != own+"\n" {
		t.Errorf("host-network container on a spare: %q, the host's is %s", out, own)
	}
}

// A stop starts a spare for the stopped container's plan: the create of a
// recreate follows, and without a burst going on there would be none. The
// create takes it and starts none behind it.
func TestStopStartsSpares(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	if _, err := r.Run(ctx, "s1", CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
		t.Fatal(err)
	}
	waitNoSpare(t, r)
	if err := r.Stop(ctx, "s1", syscall.SIGKILL, time.Second); err != nil {
		t.Fatal(err)
	}
	runsOnSpare(t, r, "s2", 1)
}

// The stops of a down come many at once: they start one spare between
// them (the first one's), not one each.
func TestManyStopsStartOneSpare(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	ids := []string{"m1", "m2", "m3", "m4"}
	for _, id := range ids {
		if _, err := r.Run(ctx, id, CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
			t.Fatal(err)
		}
	}
	waitNoSpare(t, r)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Stop(ctx, id, syscall.SIGTERM, 2*time.Second); err != nil {
				t.Error(err)
			}
		}()
	}
	seen := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		seen = max(seen, len(spares(t, r)))
	}
	wg.Wait()
	if seen > 1 {
		t.Fatalf("%d spares while %d containers stopped together, want at most 1", seen, len(ids))
	}
}

// waitNoSpare waits until the spares of the creates before expire unused.
func waitNoSpare(t *testing.T, r *Runtime) {
	t.Helper()
	for deadline := time.Now().Add(warmTTL + 3*time.Second); len(spares(t, r)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("spares left: %v", spares(t, r))
		}
	}
}

// runsOnSpare waits for n spares, runs container id and checks that it
// took the oldest.
func runsOnSpare(t *testing.T, r *Runtime, id string, n int) {
	t.Helper()
	spare := waitSpares(t, r, n)
	settled(t, spare[0])
	st, err := r.Run(ctxT(t, 30*time.Second), id, CreateOptions{Spec: testSpec(t, "sleep", "30")})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != spare[0] {
		t.Fatalf("%s ran as %d, not on the spare %d", id, st.Pid, spare[0])
	}
}

// Anticipate starts spares for a running container's plan (what `up` of
// an edited file asks while it loads), and starts no monitor when none
// runs.
func TestAnticipateStartsSpares(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	if err := r.Anticipate(ctx, "none"); err != nil || r.monitorAlive() {
		t.Fatalf("anticipate with no monitor: %v, monitor started: %v", err, r.monitorAlive())
	}
	if _, err := r.Run(ctx, "a1", CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
		t.Fatal(err)
	}
	waitNoSpare(t, r)
	if err := r.Anticipate(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	// one spare, taken by the create, which starts none behind it (a
	// spare's start costs the machine a pause on cgroup v1: warm.anticipate)
	runsOnSpare(t, r, "a2", 1)
	time.Sleep(300 * time.Millisecond)
	if left := spares(t, r); len(left) != 0 {
		t.Fatalf("spares started behind an anticipated create: %v", left)
	}
	// a create nobody anticipated keeps warmDepth behind it, for a loop
	if _, err := r.Run(ctx, "a3", CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
		t.Fatal(err)
	}
	waitSpare(t, r)
}

// childGoEnv replaces the monitor's own settings of its variables: the Go
// runtime reads a variable's first occurrence.
func TestWithChildGoEnv(t *testing.T) {
	env := withChildGoEnv([]string{"PATH=/bin", "GOGC=400", "GOMAXPROCS=8", "GOFLAGS=-x"})
	got := map[string][]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = append(got[k], v)
	}
	for k, want := range map[string]string{"PATH": "/bin", "GOFLAGS": "-x", "GOGC": "off", "GOMAXPROCS": "1", "GOMEMLIMIT": "256MiB"} {
		if len(got[k]) != 1 || got[k][0] != want {
			t.Errorf("%s: %v, want only %s (env %v)", k, got[k], want, env)
		}
	}
}

// An init runs with childGoEnv (one P, no GC), which must not reach the
// container's environment, nor that of a process exec'd into it.
func TestChildGoEnvStaysOut(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	if _, err := r.Run(ctx, "env", CreateOptions{Spec: testSpec(t, "sh", "-c", "env | grep -c '^GO' > /tmp/n; sleep 30")}); err != nil {
		t.Fatal(err)
	}
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(mustState(t, r, "env").Pid) + "/root/tmp/n")
		if out = string(b); err == nil && out != "" {
			break
		}
	}
	if out != "0\n" {
		t.Fatalf("GO* variables in the container's environment: %q", out)
	}
	pr, pw, _ := os.Pipe()
	defer pr.Close()
	code, err := r.Exec(ctx, "env", &specs.Process{Args: []string{"sh", "-c", "env | grep -c '^GO'; true"}, Cwd: "/"},
		ExecOptions{Stdio: []*os.File{nil, pw, pw}})
	pw.Close()
	b := make([]byte, 100)
	n, _ := pr.Read(b)
	if err != nil || code != 0 || string(b[:n]) != "0\n" {
		t.Fatalf("exec: exit %d (%v), GO* variables: %q", code, err, b[:n])
	}
}

// stagingOf is the staging cgroup (v1) spare pid is in.
func stagingOf(t *testing.T, pid int) string {
	t.Helper()
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	for _, l := range strings.Split(string(b), "\n") {
		if _, path, ok := strings.Cut(l, ":pids:"); ok && strings.HasPrefix(path, warmCgroupPrefix) {
			return path
		}
	}
	t.Fatalf("spare %d not staged: %s", pid, b)
	return ""
}

// monitorOutside fails when a thread of the monitor stayed in a cgroup of
// berth's (cgroup.spawnIn moves one in and back for each child it starts).
func monitorOutside(t *testing.T, monitor int) {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(monitor) + "/task/*/cgroup")
	if len(tasks) == 0 {
		t.Fatalf("no threads of monitor %d", monitor)
	}
	for _, f := range tasks {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), ":/berth/") {
			t.Errorf("monitor thread %s in a container's cgroup:\n%s", f, b)
		}
	}
}
