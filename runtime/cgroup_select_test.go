package runtime

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCgroupV1OnlyNeededHierarchies: on v1 a container joins pids, memory,
// cpuacct, freezer, devices (it has device rules) and what its resources
// ask (cpu for a quota), no other hierarchy; its cgroup mount shows those.
func TestCgroupV1OnlyNeededHierarchies(t *testing.T) {
	r := newTestRuntime(t)
	if isCgroupV2() {
		t.Skip("v1 only")
	}
	hs, err := v1Hierarchies()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	s := testSpec(t, "sh", "-c", "echo $(ls /sys/fs/cgroup); sleep 30")
	quota := int64(50000)
	s.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota}
	if _, err := r.Run(ctx, "sel", CreateOptions{Spec: s}); err != nil {
		t.Fatal(err)
	}
	st := mustState(t, r, "sel")
	var joined []string
	for name, h := range hs {
		if _, err := os.Stat(filepath.Join(h.mountpoint, st.Cgroup)); err == nil {
			joined = append(joined, name)
		}
	}
	sort.Strings(joined)
	want := []string{}
	for _, n := range []string{"cpu", "cpuacct", "devices", "freezer", "memory", "pids"} {
		if _, ok := hs[n]; ok {
			want = append(want, n)
		}
	}
	if strings.Join(joined, " ") != strings.Join(want, " ") {
		t.Fatalf("joined %v, want %v", joined, want)
	}
	var out string
	for deadline := time.Now().Add(5 * time.Second); out == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out = logText(t, r, "sel")
	}
	if strings.TrimSpace(out) != strings.Join(want, " ") {
		t.Fatalf("the container's /sys/fs/cgroup: %q, want %v", out, want)
	}
	if err := r.Delete(ctx, "sel", true); err != nil {
		t.Fatal(err)
	}
	for name, h := range hs {
		if _, err := os.Stat(filepath.Join(h.mountpoint, st.Cgroup)); err == nil {
			t.Errorf("%s: cgroup left after delete", name)
		}
	}
}

// TestCgroupMountShowsOwnCgroup: the container's /sys/fs/cgroup is its own
// cgroup, read-only, as a cgroup mount in its cgroup namespace shows it:
// its limits, its processes only, and "/" as the root of each mount in
// its mountinfo (runtimes such as Go's and the JVM's find their limits
// by joining that root with /proc/self/cgroup).
func TestCgroupMountShowsOwnCgroup(t *testing.T) {
	r := newTestRuntime(t)
	pids, mem := int64(77), int64(64<<20)
	dir := map[bool]string{true: "/sys/fs/cgroup/", false: "/sys/fs/cgroup/pids/"}[isCgroupV2()]
	memFile := map[bool]string{true: "/sys/fs/cgroup/memory.max", false: "/sys/fs/cgroup/memory/memory.limit_in_bytes"}[isCgroupV2()]
	script := "cat " + dir + "pids.max " + memFile + "; printf procs; while read p; do printf ' %s' $p; done < " + dir + "cgroup.procs; echo; " +
		"(echo 5 > " + dir + "pids.max) 2>/dev/null && echo writable || echo read-only; " +
		"awk '$9 ~ /^cgroup/ {print \"root\", $4}' /proc/self/mountinfo | sort -u"
	s := testSpec(t, "sh", "-c", script)
	s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
	st := runToEnd(t, r, "own", CreateOptions{Spec: s})
	want := "77\n67108864\nprocs 1\nread-only\nroot /\n"
	if out := logText(t, r, "own"); st.ExitCode != 0 || out != want {
		t.Fatalf("exit %d, the container's cgroups show:\n%s\nwant:\n%s", st.ExitCode, out, want)
	}
}

// TestChildrenStartInTheirCgroup: a container's init (cold: the first
// create of a monitor) and an exec'd process are in the container's cgroup
// in every hierarchy it joined, and no thread of the monitor stays in one
// (cgroup.spawnIn moves a thread in and back for each start); the cgroup
// goes with the container. On v1 here, and with the v2 driver forced on
// this machine's cgroup2 mount.
func TestChildrenStartInTheirCgroup(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v1", true: "v2"}[v2], func(t *testing.T) {
			needRoot(t)
			if v2 {
				t.Setenv(EnvCgroup2Root, cgroup2Mount(t)) // before the monitor starts
			} else if isCgroupV2() {
				t.Skip("a v2 machine")
			}
			r := newTestRuntime(t)
			ctx := ctxT(t, 30*time.Second)
			if _, err := r.Run(ctx, "placed", CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
				t.Fatal(err)
			}
			st := mustState(t, r, "placed")
			cg, err := openCgroup(st.Cgroup)
			if err != nil || len(cg.dirs) == 0 {
				t.Fatalf("cgroup %s: %+v %v", st.Cgroup, cg, err)
			}
			proc, err := r.ExecStart(ctx, "placed", &specs.Process{Args: []string{"sleep", "30"}}, ExecOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for what, pid := range map[string]int{"init": st.Pid, "exec": proc.Pid} {
				if missing := outsideOf(t, cg, pid); len(missing) > 0 {
					t.Errorf("%s (%d) outside the container's cgroup in %v", what, pid, missing)
				}
			}
			monitorOutside(t, monitorPid(t, r))
			proc.Kill()
			proc.Wait() // ours to reap: an exec's process is its caller's child
			if err := r.Delete(ctx, "placed", true); err != nil {
				t.Fatal(err)
			}
			for _, d := range cg.dirs {
				if _, err := os.Stat(d); !os.IsNotExist(err) {
					t.Errorf("cgroup %s left: %v", d, err)
				}
			}
		})
	}
}

// outsideOf lists the hierarchies of cg that pid is not in.
func outsideOf(t *testing.T, cg *cgroup, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	if cg.v2 {
		if !strings.Contains(string(b), "0::"+cg.path+"\n") {
			missing = append(missing, "unified")
		}
		return missing
	}
	hs, err := v1Hierarchies()
	if err != nil {
		t.Fatal(err)
	}
	for name := range cg.dirs {
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if p := strings.SplitN(l, ":", 3); len(p) == 3 && controllerSet(p[1]) == controllerSet(hs[name].options) {
				found = p[2] == cg.path
			}
		}
		if !found {
			missing = append(missing, name)
		}
	}
	return missing
}
