package runtime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestIsolationAndSettings(t *testing.T) {
	r := newTestRuntime(t)
	s := testSpec(t, "sh", "-c", `
		echo host=$(hostname)
		echo pid=$$
		echo user=$(id -u):$(id -g):$(id -G)
		echo home=$HOME
		echo cwd=$(pwd)
		echo nofile=$(ulimit -n)
		echo rootro=$(touch /x 2>/dev/null && echo no || echo yes)
		echo shm=$(df -k /dev/shm | tail -1 | awk '{print $2}')
		echo nets=$(ls /sys/class/net | tr '\n' ' ')
		echo devnull=$(stat -c %t:%T /dev/null)
		echo ptmx=$(readlink /dev/ptmx)
		echo cgroup=$(cat /proc/self/cgroup | grep -c ':/$')
		echo msgmax=$(cat /proc/sys/kernel/msgmax)
	`)
	s.Hostname = "box1"
	s.Root.Readonly = true
	s.Process.Cwd = "/tmp"
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 512}}
	s.Linux.Sysctl = map[string]string{"kernel.msgmax": "4096"}
	for i, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			s.Mounts[i].Options = append(m.Options, "size=2048k")
		}
	}
	st := runToEnd(t, r, "iso", CreateOptions{Spec: s, User: "app"})
	out := logText(t, r, "iso")
	if st.ExitCode != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode, out)
	}
	for _, want := range []string{"host=box1", "pid=1\n", "user=1000:1000:1000 2000", "home=/home/app", "cwd=/tmp",
		"nofile=512", "rootro=yes", "shm=2048", "nets=lo\n", "devnull=1:3", "ptmx=pts/ptmx", "msgmax=4096"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

func TestCgroupLimits(t *testing.T) {
	r := newTestRuntime(t)
	s := testSpec(t, "sleep", "30")
	mem, pids, quota, period, shares := int64(64<<20), int64(20), int64(50000), uint64(100000), uint64(512)
	s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
	s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	s.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares}
	ctx := ctxT(t, 30*time.Second)
	if _, err := r.Run(ctx, "limits", CreateOptions{Spec: s}); err != nil {
		t.Fatal(err)
	}
	var st *Stats
	for i := 0; i < 100; i++ { // until the init's Go threads are gone with its exec
		var err error
		if st, err = r.Stats("limits"); err != nil {
			t.Fatal(err)
		}
		if st.Pids == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.MemoryLimit != uint64(mem) || st.PidsLimit != uint64(pids) || st.Pids != 1 || st.MemoryUsage == 0 {
		t.Fatalf("stats %+v", st)
	}
	// The pids limit holds from inside: 40 background sleeps cannot all start.
	code, err := r.Exec(ctx, "limits", &specs.Process{Args: []string{"sh", "-c", "for i in $(seq 40); do sleep 5 & done 2>/dev/null; wait; true"}}, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = code
	top, _ := r.Top("limits")
	if len(top) > int(pids) {
		t.Fatalf("%d processes with pids.max %d", len(top), pids)
	}
	cg, _ := openCgroup(mustState(t, r, "limits").Cgroup)
	if cg.v2 {
		if v := readCg(cg.dir("cpu"), "cpu.max"); v != "50000 100000" {
			t.Fatalf("cpu.max %q", v)
		}
	} else if v := readCg(cg.dir("cpu"), "cpu.cfs_quota_us"); v != "50000" {
		t.Fatalf("cfs_quota_us %q", v)
	}
}

func mustState(t *testing.T, r *Runtime, id string) *State {
	s, err := r.State(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMemoryLimitKills(t *testing.T) {
	r := newTestRuntime(t)
	s := testSpec(t, "sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived")
	mem := int64(16 << 20)
	s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
	st := runToEnd(t, r, "oom", CreateOptions{Spec: s})
	if st.ExitCode == 0 || strings.Contains(logText(t, r, "oom"), "survived") {
		t.Fatalf("memory limit not enforced: exit %d", st.ExitCode)
	}
}

func TestExecUserEnvCwdAndTop(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	s := testSpec(t, "sleep", "30")
	s.Process.Env = append(s.Process.Env, "FROM_SPEC=1")
	if _, err := r.Run(ctx, "ex", CreateOptions{Spec: s}); err != nil {
		t.Fatal(err)
	}
	pr, pw, _ := os.Pipe()
	code, err := r.Exec(ctx, "ex", &specs.Process{Args: []string{"sh", "-c", "echo $(id -u) $FROM_SPEC $(pwd) $(hostname) $$; exit 7"}, Cwd: "/etc"},
		ExecOptions{Stdio: []*os.File{nil, pw, pw}, User: "nobody"})
	pw.Close()
	out := make([]byte, 200)
	n, _ := pr.Read(out)
	if err != nil || code != 7 {
		t.Fatalf("exec code %d err %v", code, err)
	}
	f := strings.Fields(string(out[:n]))
	if len(f) != 5 || f[0] != "65534" || f[1] != "1" || f[2] != "/etc" || f[3] != "berth" {
		t.Fatalf("exec saw %q", out[:n])
	}
	if pid, _ := strconv.Atoi(f[4]); pid < 2 || pid > 50 {
		t.Fatalf("exec pid %d is not in the container's pid namespace", pid)
	}
	top, err := r.Top("ex")
	if err != nil || len(top) != 1 || !strings.Contains(top[0].Command, "sleep") {
		t.Fatalf("top %+v %v", top, err)
	}
}

func TestStopKillPauseDeleteLeaveNothing(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 60*time.Second)
	// A shell that ignores SIGTERM: stop must escalate to SIGKILL.
	s := testSpec(t, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
	st, err := r.Run(ctx, "stubborn", CreateOptions{Spec: s, Restart: RestartPolicy{Name: "always"}})
	if err != nil {
		t.Fatal(err)
	}
	cgDirs := func() []string {
		cg, _ := openCgroup(st.Cgroup)
		var out []string
		for _, d := range cg.dirs {
			out = append(out, d)
		}
		return out
	}()
	if err := r.Pause(ctx, "stubborn"); err != nil {
		t.Fatal(err)
	}
	if mustState(t, r, "stubborn").Status != StatusPaused {
		t.Fatal("not paused")
	}
	if err := r.Resume(ctx, "stubborn"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.Stop(ctx, "stubborn", 0, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 400*time.Millisecond {
		t.Fatal("stop did not wait for the grace period")
	}
	got := mustState(t, r, "stubborn")
	if got.Status != StatusStopped || got.ExitCode != 137 {
		t.Fatalf("after stop: %s exit %d", got.Status, got.ExitCode)
	}
	time.Sleep(300 * time.Millisecond)
	if mustState(t, r, "stubborn").Status != StatusStopped {
		t.Fatal("restart policy restarted a container stopped by the user")
	}
	if err := r.Delete(ctx, "stubborn", false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.State("stubborn"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.Root(), "stubborn")); !os.IsNotExist(err) {
		t.Fatal("state directory left")
	}
	for _, d := range cgDirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Fatalf("cgroup %s left", d)
		}
	}
	if syscall.Kill(st.Pid, 0) == nil && pidAlive(st.Pid, st.PidStart) {
		t.Fatal("process left")
	}
	if m, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(m), r.Root()+"/stubborn") {
		t.Fatal("mount left")
	}
}

func TestRestartPolicyBackoff(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 60*time.Second)
	s := testSpec(t, "sh", "-c", "echo run; exit 1")
	if _, err := r.Run(ctx, "flaky", CreateOptions{Spec: s, Restart: RestartPolicy{Name: "on-failure", MaxRetries: 3}}); err != nil {
		t.Fatal(err)
	}
	// 3 restarts with 100+200+400 ms of backoff.
	waitRestarted(t, r, "flaky", 3)
	time.Sleep(time.Second)
	st := mustState(t, r, "flaky")
	if st.Restarts != 3 || st.ExitCode != 1 {
		t.Fatalf("restarts %d exit %d", st.Restarts, st.ExitCode)
	}
	if n := strings.Count(logText(t, r, "flaky"), "run\n"); n != 4 {
		t.Fatalf("%d runs logged, want 4", n)
	}
}

// waitRestarted waits until container id stopped for good after n
// restarts.
func waitRestarted(t *testing.T, r *Runtime, id string, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := mustState(t, r, id)
		if st.Restarts == n && st.Status == StatusStopped && !st.Finished.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: restarts %d, status %s, want %d restarts and stopped", id, st.Restarts, st.Status, n)
		}
	}
}

// TestContainerOutlivesMonitor kills the monitor with SIGKILL: the
// container keeps running and writing; the next call starts a new monitor
// that adopts it, keeps logging and records its end.
func TestContainerOutlivesMonitor(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 60*time.Second)
	s := testSpec(t, "sh", "-c", "i=0; while [ $i -lt 30 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done")
	st, err := r.Run(ctx, "survivor", CreateOptions{Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	mon := monitorPid(t, r)
	syscall.Kill(mon, syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)
	if !pidAlive(st.Pid, st.PidStart) {
		t.Fatal("container died with its monitor")
	}
	// Any call brings a monitor back; it adopts the container.
	if err := r.Kill(ctx, "survivor", syscall.SIGCONT, false); err != nil {
		t.Fatal(err)
	}
	if monitorPid(t, r) == mon {
		t.Fatal("same monitor")
	}
	end, err := r.Wait(ctx, "survivor")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	out := logText(t, r, "survivor")
	if end.Status != StatusStopped || !strings.Contains(out, "tick 29") {
		t.Fatalf("status %s, log:\n%s", end.Status, out)
	}
}

func monitorPid(t *testing.T, r *Runtime) int {
	out, err := exec.Command("fuser", filepath.Join(r.Root(), "monitor.lock")).Output()
	if err == nil {
		if f := strings.Fields(string(out)); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	// No fuser: find the process holding the socket by scanning /proc.
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if strings.Contains(string(env), envMonitor+"="+r.Root()+"\x00") && strings.Contains(string(env), envChild+"="+childMon) {
			return pid
		}
	}
	t.Fatal("no monitor")
	return 0
}

func TestInitReaper(t *testing.T) {
	r := newTestRuntime(t)
	s := testSpec(t, "sh", "-c", "echo pid=$$; exit 5")
	st := runToEnd(t, r, "init", CreateOptions{Spec: s, Init: true})
	out := logText(t, r, "init")
	if st.ExitCode != 5 || strings.Contains(out, "pid=1\n") || !strings.Contains(out, "pid=") {
		t.Fatalf("exit %d: %s", st.ExitCode, out)
	}
}

func TestJoinNetworkNamespace(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	owner := testSpec(t, "sh", "-c", "readlink /proc/self/ns/net; sleep 30")
	if _, err := r.Run(ctx, "netowner", CreateOptions{Spec: owner}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	ownerState := mustState(t, r, "netowner")
	if ownerState.Status != StatusRunning {
		t.Fatalf("owner %s: %s", ownerState.Status, logText(t, r, "netowner"))
	}
	s := testSpec(t, "sh", "-c", "readlink /proc/self/ns/net")
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			s.Linux.Namespaces[i].Path = "/proc/" + strconv.Itoa(ownerState.Pid) + "/ns/net"
		}
	}
	runToEnd(t, r, "joiner", CreateOptions{Spec: s})
	ownNS, _ := os.Readlink("/proc/self/ns/net")
	if out := logText(t, r, "joiner"); !strings.HasPrefix(out, "net:[") || out == ownNS+"\n" || out != logText(t, r, "netowner") {
		t.Fatalf("joined netns shows %q; owner: %s", out, logText(t, r, "netowner"))
	}
}

func TestHealthcheck(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	hc := &Healthcheck{Test: []string{"CMD-SHELL", "test -f /tmp/healthy-$HOSTNAME || test -f /dev/shm/ok"}, Interval: 100 * time.Millisecond, Timeout: time.Second, Retries: 2}
	s := testSpec(t, "sh", "-c", "sleep 0.5; touch /dev/shm/ok; sleep 1; rm /dev/shm/ok; sleep 30")
	if _, err := r.Run(ctx, "hc", CreateOptions{Spec: s, Healthcheck: hc}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if h := mustState(t, r, "hc").Health; h != nil {
			seen[h.Status] = true
			if seen["healthy"] && h.Status == "unhealthy" {
				return
			}
		}
	}
	t.Fatalf("health states seen: %v", seen)
}

func TestUserNamespace(t *testing.T) {
	r := newTestRuntime(t)
	s := testSpec(t, "sh", "-c", "cat /proc/self/uid_map; id -u; ls -ln /bin/busybox | awk '{print $3}'")
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	st := runToEnd(t, r, "userns", CreateOptions{Spec: s})
	out := logText(t, r, "userns")
	f := strings.Fields(out)
	// Inside: root, mapped to 100000; the host's root-owned files are nobody's.
	if st.ExitCode != 0 || len(f) != 5 || f[0] != "0" || f[1] != "100000" || f[3] != "0" || f[4] != "65534" {
		t.Fatalf("exit %d: %q", st.ExitCode, out)
	}
}
