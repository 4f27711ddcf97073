package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A warm init: while containers are being created (a burst: `up` of a
// project, a benchmark loop, a restart storm), the monitor keeps one init
// child started ahead, cloned into the namespaces the last create asked
// for and past the Go runtime's start, blocked reading its config. The
// next create with the same namespace plan takes it and skips the
// re-exec (~10 ms of process start and package initialisation on this
// machine, more under load) and the namespaces' creation (a network
// namespace alone is a few ms); a new one is started behind it.
//
// The spare is not yet anybody's: it has /dev/null for stdio and no
// cgroup. When taken, the parent places it in the container's cgroup,
// then sends its stdio, exec.fifo and console socket over the sync socket
// (SCM_RIGHTS, one message before the config), which the child dup3s onto
// fds 0-2, 4 and 5 (slots it inherited, so that they are free of any fd
// its Go runtime opened). A spare left unused for warmTTL exits (it
// costs a Go process's memory), and it exits by itself when the monitor
// goes (EOF on its sync socket).
//
// On cgroup v1 the spare is also born, ahead, in staging cgroups
// (/berth/.warm-<monitor pid>-<n> of pids, memory, cpuacct, freezer and
// devices; cgroup.spawnIn clones it from a thread moved there): a create
// renames them to the container's (v1 allows a rename within a parent),
// which spares the container's path a migration of the process into each
// hierarchy. v2 has no rename: there the spare moves as a cold child
// would have.
//
// Plans that make no user namespace and join nothing by path, or only a
// network namespace, are served warm: id mappings are written at clone,
// and namespaces joined by path are joined by the C constructor at start,
// before the Go runtime (a mount namespace cannot be joined by a process
// with threads). A network namespace can: setns of one is per thread. A
// spare is cloned without one (so it serves host-network plans too), and
// the create sends it the namespace's fd with its stdio; it joins it on
// the thread that sets up the rootfs and execs, before either (sysfs and
// /proc/sys/net show the namespace of the thread that mounts or opens
// them). Every container of a compose project joins its sandbox's
// network namespace by path, so without this none of them was served
// warm.

const (
	envWarm       = "_BERTH_WARM"
	warmConsoleFd = 5
	warmTTL       = 500 * time.Millisecond
)

// warmDepth spares are kept in a burst: a spare needs 10 to 20 ms to be
// ready, about one create of a loop, so with one spare the next create
// often found it still starting (20 of 59 runs, even with the spare
// started as soon as the last was taken) and waited; the older of two has
// had two creates' time.
const warmDepth = 2

type warmPool struct {
	mu       sync.Mutex
	spares   []*child // oldest first
	clone    uintptr  // the spares' clone flags
	starting int      // spares being started
	// creating counts the creates under way. Spares pay off when creates
	// come one after another (a loop, a recreate): each finds its init
	// started ahead, off its path. When many run at once (an up of 50
	// services) the machine's CPUs are the limit, and a spare costs more
	// CPU than a cold init (its warm-up, its staging cgroups, its pages
	// faulted back): `up -d` of 50 services, alternated runs on a tmpfs
	// run root, took 1.87 s (median) with spares started behind every
	// create, 1.40 s with none. So spares are started only behind a
	// create that runs alone (1.67 s).
	creating atomic.Int32
	// anticipated is set when a spare was started for a create expected
	// alone (anticipate): the create that takes it starts no other.
	anticipated atomic.Bool
	// stops counts the stops under way: one alone is likely a
	// recreate's, many are a down's, which no create follows.
	stops atomic.Int32
}

// warm is the monitor's pool; nil in other processes (and then launch
// always starts a child itself).
var warm *warmPool

func warmable(plan nsPlan) bool {
	return !plan.fork && !plan.userNS && (len(plan.join) == 0 || plan.joinedNet() != "")
}

// joinedNet is the path of the network namespace plan joins when that is
// the only namespace it joins, "" otherwise.
func (p nsPlan) joinedNet() string {
	if len(p.join) != 1 {
		return ""
	}
	path, _ := strings.CutPrefix(p.join[0], "net:")
	if path == p.join[0] {
		return ""
	}
	return path
}

// take returns the spare when it fits the plan and sees every path the
// container needs as the monitor does (see sees). The caller calls next
// right away: a spare takes 10 to 20 ms to be ready (its Go runtime's
// start at nice 19, its namespaces); started only once the create was
// done, it was still starting when the next create of a loop took it in
// 36 of 59 runs (timestamps of spawn, ready and take), and that create
// waited for it.
func (w *warmPool) take(plan nsPlan, paths []string) *child {
	if w == nil || !warmable(plan) {
		return nil
	}
	w.mu.Lock()
	var c *child
	if len(w.spares) > 0 && w.clone == plan.clone {
		c, w.spares = w.spares[0], w.spares[1:]
		c.expire.Stop()
	}
	w.mu.Unlock()
	if c == nil {
		return nil
	}
	if !c.sees(paths) {
		c.discard()
		return nil
	}
	c.renice()
	return c
}

// renice puts every thread of a taken spare back to the default priority
// (the C constructor started it at nice 19; the child resets only the
// thread that will exec). Its exec waits for each other Go thread to exit,
// and at nice 19 they would queue behind the next spare's start. Done from
// here, where the spare's thread ids are the host's.
func (c *child) renice() {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(c.pid) + "/task")
	if err != nil {
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			unix.Setpriority(unix.PRIO_PROCESS, tid, 0)
		}
	}
}

// sees says whether each path resolves, in the spare's mount namespace, to
// the same file as in the monitor's. The spare copied the mount table when
// it was cloned: a mount made since (a build step's overlay rootfs, a stage
// bound into a RUN) reaches it only by propagation, which a private host
// mount (a machine without systemd, a builder's own namespace) does not
// give; the spare would then set up its container on the empty directory
// beneath.
func (c *child) sees(paths []string) bool {
	view := "/proc/" + strconv.Itoa(c.pid) + "/root"
	for _, p := range paths {
		var host, spare unix.Stat_t
		if unix.Stat(p, &host) != nil {
			continue // made by the create itself: the same for both
		}
		if unix.Stat(view+p, &spare) != nil || host.Dev != spare.Dev || host.Ino != spare.Ino {
			return false
		}
	}
	return true
}

// hostPaths are the paths of the host a create hands its container: the
// rootfs and the sources of bind mounts.
func hostPaths(root string, mounts []specs.Mount) []string {
	paths := []string{root}
	for _, m := range mounts {
		if m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind") {
			if filepath.IsAbs(m.Source) {
				paths = append(paths, m.Source)
			}
		}
	}
	return paths
}

// next starts, in the background, a spare for the plan a create used,
// unless other creates are under way (see creating) or the create was
// anticipated (see anticipate).
func (w *warmPool) next(plan nsPlan) {
	if w != nil && warmable(plan) && !w.anticipated.Swap(false) && w.creating.Load() <= 1 {
		go w.refill(plan, warmDepth)
	}
}

// anticipate starts one spare for plan, for a create expected alone: a
// recreate, whose stop comes first, or `up` of an edited file. One, not
// warmDepth, and the create that takes it starts none behind it: a spare
// costs ~10 ms of CPU, and on cgroup v1 its staging (stageCgroup) moves a
// process between cgroups, a write that waits for an RCU grace period
// (~9 ms here) during which every fork and every thread's exit on the
// machine waits too (perf sched_switch stacks: percpu_down_write of the
// cgroup threadgroup lock). The refill behind a recreate's create staged
// its spare while the successor's init exec'd, whose exec waits for the
// init's other threads to exit. A loop of creates (no stop before each)
// still keeps warmDepth.
func (w *warmPool) anticipate(plan nsPlan) {
	if w == nil || !warmable(plan) || w.creating.Load() > 0 {
		return
	}
	w.anticipated.Store(true)
	go w.refill(plan, 1)
}

// stopping counts a stop under way until the returned func is called,
// and tells whether it is the only one.
func (w *warmPool) stopping() (alone bool, done func()) {
	if w == nil {
		return false, func() {}
	}
	return w.stops.Add(1) == 1, func() { w.stops.Add(-1) }
}

// begin counts a create under way until the returned func is called.
func (w *warmPool) begin() func() {
	if w == nil {
		return func() {}
	}
	w.creating.Add(1)
	return func() { w.creating.Add(-1) }
}

// refill starts spares for plan until depth are there or starting
// (spares of another plan are replaced: the latest plan is the likeliest
// next).
func (w *warmPool) refill(plan nsPlan, depth int) {
	w.mu.Lock()
	var old []*child
	if w.clone != plan.clone {
		old, w.spares, w.clone = w.spares, nil, plan.clone
	}
	n := depth - len(w.spares) - w.starting
	if n < 0 {
		n = 0
	}
	w.starting += n
	w.mu.Unlock()
	for _, c := range old {
		c.expire.Stop()
		c.discard()
	}
	for range n {
		c := startSpare(plan)
		w.mu.Lock()
		w.starting--
		if c != nil && w.clone != plan.clone {
			w.mu.Unlock()
			c.discard()
			continue
		}
		if c != nil {
			w.spares = append(w.spares, c)
			c.expire = time.AfterFunc(warmTTL, func() { w.drop(c) })
		}
		w.mu.Unlock()
	}
}

// drop ends a spare left unused for warmTTL.
func (w *warmPool) drop(c *child) {
	w.mu.Lock()
	i := slices.Index(w.spares, c)
	if i >= 0 {
		w.spares = slices.Delete(w.spares, i, i+1)
	}
	w.mu.Unlock()
	if i >= 0 {
		c.discard()
	}
}

// startSpare starts a spare init for plan, in its staging cgroups.
func startSpare(plan nsPlan) *child {
	p := plan
	p.warm = true
	p.join = nil // a joined network namespace comes at take (sendFds)
	// fd 5 held by a placeholder: the console socket's slot, which no fd
	// the Go runtime opens may take.
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil
	}
	defer null.Close()
	stage := newStaging()
	c, placed, err := stage.spawnIn(p, func(p nsPlan) (*child, error) { return startChild(childInit, p, nil, nil, null) })
	if err != nil {
		if stage != nil {
			stage.destroy()
		}
		return nil
	}
	if stage != nil && !placed && stage.addPid(c.pid) != nil {
		stage.destroy()
		stage = nil
	}
	c.staged = stage
	return c
}

// discard ends an unused spare: closing its sync socket makes it exit.
func (c *child) discard() {
	c.sync.Close()
	c.kill()
	if c.staged != nil {
		c.staged.destroy()
		c.staged = nil
	}
}

const warmCgroupPrefix = "/berth/.warm-"

// stagings numbers this monitor's staging cgroups.
var stagings atomic.Uint64

// newStaging makes a spare's staging cgroups (v1 only; nil if not):
// /berth/.warm-<monitor pid>-<n> of pids, memory, cpuacct, freezer and
// devices.
func newStaging() *cgroup {
	if isCgroupV2() {
		return nil
	}
	name := warmCgroupPrefix + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(stagings.Add(1), 10)
	c, hs, err := cgroupAt(name)
	if err != nil {
		return nil
	}
	need := map[string]bool{"pids": true, "memory": true, "cpuacct": true, "freezer": true, "devices": true}
	for name, h := range hs {
		if !need[h.options] {
			delete(c.dirs, name)
		}
	}
	c.hier = hs
	if err := c.create(); err != nil {
		c.destroy()
		return nil
	}
	return c
}

// adoptStaged renames a taken spare's staging cgroups to cg's (same
// parent, v1) and returns the hierarchies done so; cg then also has the
// staged hierarchies it would not have joined (harmless: fresh, unlimited).
// When the rename cannot be (another parent, v2), the spare will be moved
// like a cold child and its staging directories removed afterwards.
func (c *child) adoptStaged(cg *cgroup) map[string]bool {
	if c == nil || c.staged == nil {
		return nil
	}
	st := c.staged
	c.staged = nil
	if cg.v2 || filepath.Dir(st.path) != filepath.Dir(cg.path) {
		go func() {
			time.Sleep(time.Second) // once the process left them
			st.destroy()
		}()
		return nil
	}
	moved := map[string]bool{}
	for name, d := range st.dirs {
		h, ok := cg.hier[name]
		if !ok {
			continue
		}
		target := filepath.Join(h.mountpoint, cg.path)
		if err := os.Rename(d, target); err != nil {
			continue // migrated below, like a cold child
		}
		cg.dirs[name] = target
		moved[name] = true
	}
	for name, d := range st.dirs {
		if !moved[name] {
			dir := d
			go func() { time.Sleep(time.Second); os.Remove(dir) }()
		}
	}
	return moved
}

// cleanStaging removes staging cgroups a previous monitor left (empty
// ones only: a spare still running keeps its own).
func cleanStaging() {
	hs, err := v1Hierarchies()
	if err != nil || isCgroupV2() {
		return
	}
	for _, h := range hs {
		dirs, _ := filepath.Glob(filepath.Join(h.mountpoint, warmCgroupPrefix+"*"))
		for _, d := range dirs {
			os.Remove(d)
		}
	}
}

// sendFds hands a warm child what a cold one would have inherited: fds
// 0-2, 4 and the console socket (a placeholder when there is none), in
// that order, then the network namespace it joins, when it joins one.
func (c *child) sendFds(stdio []*os.File, extra, console, netns *os.File) error {
	files := stdioOrNull(stdio)
	if extra == nil {
		extra = files[0]
	}
	files = append(files, extra)
	if console != nil || netns != nil {
		if console == nil {
			console = files[0] // fd 5 stays a placeholder: consoleFd is 0
		}
		files = append(files, console)
	}
	flags := byte(0)
	if netns != nil {
		files = append(files, netns)
		flags |= warmJoinNet
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if err := unix.Sendmsg(int(c.sync.Fd()), []byte{byte(len(fds)), flags}, unix.UnixRights(fds...), nil, 0); err != nil {
		return fmt.Errorf("send fds to the container's init: %w", err)
	}
	for i, f := range files[:3] {
		if i >= len(stdio) || stdio[i] == nil {
			f.Close() // opened by stdioOrNull
		}
	}
	return nil
}

// sendWarm sends a taken spare its fds (sendFds), with the network
// namespace the plan joins.
func (c *child) sendWarm(plan nsPlan, stdio []*os.File, extra, console *os.File) error {
	var netns *os.File
	if path := plan.joinedNet(); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("network namespace: %w", err)
		}
		defer f.Close()
		netns = f
	}
	return c.sendFds(stdio, extra, console, netns)
}

// errUnused: a spare's sync socket closed before any fds came (let go).
var errUnused = errors.New("spare let go")

// warmJoinNet, in sendFds' flags: the last fd is a network namespace.
const warmJoinNet = 1

// recvWarmFds is the warm child's half of sendFds. It runs on the thread
// that will exec (childMain's, locked): the network namespace it joins
// is that thread's.
func recvWarmFds() error {
	buf, oob := make([]byte, 2), make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := unix.Recvmsg(syncFd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n == 0 {
		return errUnused
	}
	if n != len(buf) {
		return fmt.Errorf("fds message of %d bytes", n)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("no fds (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) < 4 {
		return fmt.Errorf("fds %v (%v)", fds, err)
	}
	// Taken: back to the default priority (the C constructor started the
	// spare at nice 19). Nice is per thread on Linux: this is the locked
	// thread that execs the container.
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, 0); err != nil {
		return err
	}
	if buf[1]&warmJoinNet != 0 {
		netns := fds[len(fds)-1]
		fds = fds[:len(fds)-1]
		err := unix.Setns(netns, unix.CLONE_NEWNET)
		unix.Close(netns)
		if err != nil {
			return fmt.Errorf("join network namespace: %w", err)
		}
	}
	targets := []int{0, 1, 2, 4, warmConsoleFd}
	for i, fd := range fds {
		if i >= len(targets) {
			unix.Close(fd)
			continue
		}
		// Not close-on-exec: stdio must survive execve (4 and the console
		// are marked so by their users).
		if err := unix.Dup3(fd, targets[i], 0); err != nil {
			return err
		}
	}
	for _, fd := range fds {
		if fd > warmConsoleFd {
			unix.Close(fd)
		}
	}
	return nil
}

// warmDecoder makes encoding/json build, ahead, the decoders of every type
// an initConfig holds, by decoding a sample that sets each field. A fresh
// process builds them on its first Decode, ~1.4 ms measured in a spare
// between its fds and its config: on the create's path. A spare does it
// while it waits for a create.
func warmDecoder() {
	var sample initConfig
	fillSample(reflect.ValueOf(&sample).Elem(), map[reflect.Type]bool{})
	b, err := json.Marshal(&sample)
	if err != nil {
		return // a type refusing the sample: its decoder is built later
	}
	var out initConfig
	json.Unmarshal(b, &out)
}

// fillSample gives v, and every field, element and map entry beneath it,
// a non-zero value; a type met again beneath itself is left zero.
func fillSample(v reflect.Value, open map[reflect.Type]bool) {
	t := v.Type()
	switch t.Kind() {
	case reflect.Pointer:
		if open[t] {
			return
		}
		open[t] = true
		defer delete(open, t)
		v.Set(reflect.New(t.Elem()))
		fillSample(v.Elem(), open)
	case reflect.Struct:
		if open[t] {
			return
		}
		open[t] = true
		defer delete(open, t)
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).IsExported() {
				fillSample(v.Field(i), open)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(t, 1, 1))
		fillSample(v.Index(0), open)
	case reflect.Map:
		k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
		fillSample(k, open)
		fillSample(e, open)
		m := reflect.MakeMap(t)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	}
}

// dropTextPages unmaps, from this process's page tables, the read-only
// pages of the berth binary it has touched so far (code, read-only data,
// the Go runtime's tables: ~14 MB after its start). The container's exec
// tears down every page a process maps, and for an init that had mapped
// all of that it took 3 to 7 ms (sched_process_exec after sys_enter_execve
// in `perf record`), on the create's path. A spare does it while it waits;
// what the create then runs faults back in, from memory. Writable mappings
// are left alone: dropping them would lose their data.
func dropTextPages() {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	exe := ""
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		path := strings.Join(f[5:], " ")
		if exe == "" {
			exe = path // the first mapping with a path is the executable
		}
		if path != exe || strings.Contains(f[1], "w") {
			continue
		}
		from, to, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(from, 16, 64)
		b, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(a), uintptr(b-a), unix.MADV_DONTNEED)
	}
}
