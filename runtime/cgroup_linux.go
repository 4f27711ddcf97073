package runtime

import (
	"maps"
	"sync"

	"bufio"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const cgroupRoot = "/sys/fs/cgroup"

// cgroup is one container's cgroup, on a unified (v2) or a v1 host. The
// mode is detected once: a cgroup.controllers file at the root means v2;
// otherwise every v1 hierarchy from mountinfo is used (a hybrid v2 mount
// with no controllers, as on this machine, is ignored).
type cgroup struct {
	v2   bool
	root string               // v2: the unified hierarchy's mountpoint
	path string               // relative to each hierarchy root, starts with /
	dirs map[string]string    // v1: controller -> absolute dir; v2: "" -> dir
	hier map[string]hierarchy // v1, of a new cgroup: every hierarchy
}

type hierarchy struct {
	mountpoint string
	options    string // "memory" / "cpu,cpuacct" / "name=systemd"; "" for cgroup2
	root       string // mount root inside the hierarchy (normally /)
}

// EnvCgroup2Root forces the cgroup v2 driver on the cgroup2 mount it names
// (on a hybrid machine like this one, /sys/fs/cgroup/unified): the tests
// of the v2 driver use it. The monitor inherits it from whoever started it.
const EnvCgroup2Root = "BERTH_CGROUP2_ROOT"

// cgroupV2Root is the unified hierarchy's mountpoint when the v2 driver is
// used ("" on v1).
func cgroupV2Root() string {
	if p := os.Getenv(EnvCgroup2Root); p != "" {
		return p
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return cgroupRoot
	}
	return ""
}

func isCgroupV2() bool { return cgroupV2Root() != "" }

// v1Cache keeps the last v1Hierarchies answer: the monitor asks on every
// create, stage and delete, and parsing mountinfo each time was ~0.9 ms of
// its CPU per container. Hierarchies are mounted at boot and stay; the
// answer is used as long as each of its mountpoints is still a cgroup
// file system (a statfs each), and read again otherwise.
var v1Cache struct {
	sync.Mutex
	hs map[string]hierarchy
}

// v1Hierarchies lists the mounted v1 hierarchies keyed by mountpoint base.
// The map is shared: callers do not modify it.
func v1Hierarchies() (map[string]hierarchy, error) {
	v1Cache.Lock()
	defer v1Cache.Unlock()
	if v1Cache.hs != nil && stillCgroups(v1Cache.hs) {
		return v1Cache.hs, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hs, err := parseV1Hierarchies(f)
	if err != nil {
		return nil, err
	}
	v1Cache.hs = hs
	return hs, nil
}

func stillCgroups(hs map[string]hierarchy) bool {
	for _, h := range hs {
		var st unix.Statfs_t
		if unix.Statfs(h.mountpoint, &st) != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
			return false
		}
	}
	return true
}

func parseV1Hierarchies(f *os.File) (map[string]hierarchy, error) {
	out := map[string]hierarchy{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		var keep []string
		for _, o := range strings.Split(qf[2], ",") {
			if o != "rw" && o != "ro" && !strings.HasPrefix(o, "release_agent") && o != "clone_children" && o != "noprefix" && o != "xattr" {
				keep = append(keep, o)
			}
		}
		// The first mount of a hierarchy is the host's: a container in the
		// host's mount namespace mounts more (read-only, under its root).
		if _, dup := out[filepath.Base(pf[4])]; !dup {
			out[filepath.Base(pf[4])] = hierarchy{mountpoint: pf[4], options: strings.Join(keep, ","), root: pf[3]}
		}
	}
	return out, sc.Err()
}

func newCgroup(spec *specs.Spec, id string) (*cgroup, error) {
	rel := "/berth/" + id
	if spec.Linux != nil && spec.Linux.CgroupsPath != "" {
		rel = filepath.Clean("/" + spec.Linux.CgroupsPath)
		if strings.Contains(spec.Linux.CgroupsPath, ":") {
			// systemd's slice:prefix:name form: no systemd here, use the name.
			parts := strings.Split(spec.Linux.CgroupsPath, ":")
			rel = "/" + parts[0] + "/" + parts[len(parts)-1]
		}
	}
	c, hs, err := cgroupAt(rel)
	if err != nil || c.v2 {
		return c, err
	}
	// v1: only the hierarchies the container needs. Every one costs a
	// directory to make and remove and a migration of the process (each
	// a wait for an RCU grace period in the kernel); runc joins all.
	need := v1Needed(withDeviceRules(spec))
	for name, h := range hs {
		use := false
		for _, ctl := range strings.Split(h.options, ",") {
			use = use || need[ctl]
		}
		if !use {
			delete(c.dirs, name)
		}
	}
	c.hier = hs
	return c, nil
}

// v1Needed names the v1 controllers a container joins: pids (its
// processes: top, kill, delete), memory and cpuacct (stats), freezer
// (pause), and those its resources set.
func v1Needed(r *specs.LinuxResources) map[string]bool {
	need := map[string]bool{"pids": true, "memory": true, "cpuacct": true, "freezer": true}
	if r == nil {
		return need
	}
	need["devices"] = len(r.Devices) > 0
	if cpu := r.CPU; cpu != nil {
		need["cpu"] = cpu.Shares != nil || cpu.Quota != nil || cpu.Period != nil || cpu.RealtimePeriod != nil || cpu.RealtimeRuntime != nil || cpu.Idle != nil || cpu.Burst != nil
		need["cpuset"] = cpu.Cpus != "" || cpu.Mems != ""
	}
	need["blkio"] = r.BlockIO != nil
	need["hugetlb"] = len(r.HugepageLimits) > 0
	if n := r.Network; n != nil {
		need["net_cls"] = n.ClassID != nil
		need["net_prio"] = len(n.Priorities) > 0
	}
	return need
}

// openCgroup opens an existing container's cgroup: on v1, the
// hierarchies it has a directory in.
func openCgroup(rel string) (*cgroup, error) {
	c, _, err := cgroupAt(rel)
	if err != nil || c.v2 {
		return c, err
	}
	for name, d := range c.dirs {
		if _, err := os.Stat(d); err != nil {
			delete(c.dirs, name)
		}
	}
	return c, nil
}

func cgroupAt(rel string) (*cgroup, map[string]hierarchy, error) {
	c := &cgroup{path: rel, dirs: map[string]string{}}
	if root := cgroupV2Root(); root != "" {
		c.v2 = true
		c.root = root
		c.dirs[""] = filepath.Join(root, rel)
		return c, nil, nil
	}
	hs, err := v1Hierarchies()
	if err != nil {
		return nil, nil, err
	}
	for name, h := range hs {
		c.dirs[name] = filepath.Join(h.mountpoint, rel)
	}
	return c, hs, nil
}

func (c *cgroup) dir(controller string) string {
	if c.v2 {
		return c.dirs[""]
	}
	return c.dirs[controller]
}

func writeCg(dir, file, val string) error {
	if dir == "" {
		return fmt.Errorf("cgroup controller for %s is not mounted", file)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0); err != nil {
		return fmt.Errorf("cgroup %s/%s=%s: %w", dir, file, val, err)
	}
	return nil
}

func readCg(dir, file string) string {
	b, _ := os.ReadFile(filepath.Join(dir, file))
	return strings.TrimSpace(string(b))
}

func (c *cgroup) create() error {
	if c.v2 {
		return c.createV2()
	}
	for name, d := range c.dirs {
		if name == "cpuset" {
			if err := mkCpuset(d); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", d, err)
		}
	}
	return nil
}

// mkCpuset creates each level, copying cpus and mems from the parent: a v1
// cpuset with empty cpus refuses tasks.
func mkCpuset(d string) error {
	if _, err := os.Stat(d); err == nil {
		return nil
	}
	parent := filepath.Dir(d)
	if err := mkCpuset(parent); err != nil {
		return err
	}
	if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		if readCg(d, f) == "" {
			if err := writeCg(d, f, readCg(parent, f)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *cgroup) createV2() error {
	d := c.dirs[""]
	rel, _ := filepath.Rel(c.root, d)
	cur := c.root
	for _, part := range strings.Split(rel, "/") {
		avail := strings.Fields(readCg(cur, "cgroup.controllers"))
		var enable []string
		for _, ctl := range avail {
			if ctl == "memory" || ctl == "pids" || ctl == "cpu" || ctl == "cpuset" || ctl == "io" {
				enable = append(enable, "+"+ctl)
			}
		}
		if len(enable) > 0 {
			// Best effort: a controller may be unavailable (delegation).
			os.WriteFile(filepath.Join(cur, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0)
		}
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("cgroup %s: %w", cur, err)
		}
	}
	return nil
}

func (c *cgroup) addPid(pid int) error { return c.addPidExcept(pid, nil) }

// addPidExcept moves pid into the cgroup but for the hierarchies in skip
// (where it is already).
func (c *cgroup) addPidExcept(pid int, skip map[string]bool) error {
	file := "cgroup.procs"
	for name, d := range c.dirs {
		if skip[name] {
			continue
		}
		if err := writeCg(d, file, strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func (c *cgroup) apply(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if c.v2 {
		return c.applyV2(r)
	}
	return c.applyV1(r)
}

func (c *cgroup) applyV1(r *specs.LinuxResources) error {
	var w []error
	set := func(ctl, file, val string) { w = append(w, writeCg(c.dir(ctl), file, val)) }
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			set("memory", "memory.limit_in_bytes", strconv.FormatInt(*m.Limit, 10))
		}
		if m.Reservation != nil {
			set("memory", "memory.soft_limit_in_bytes", strconv.FormatInt(*m.Reservation, 10))
		}
		if m.Swap != nil {
			if _, err := os.Stat(filepath.Join(c.dir("memory"), "memory.memsw.limit_in_bytes")); err == nil {
				set("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(*m.Swap, 10))
			}
		}
		// kmem limits are deprecated (gone in recent kernels): best effort.
		if m.Kernel != nil {
			writeCg(c.dir("memory"), "memory.kmem.limit_in_bytes", strconv.FormatInt(*m.Kernel, 10))
		}
		if m.KernelTCP != nil {
			writeCg(c.dir("memory"), "memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(*m.KernelTCP, 10))
		}
		if m.Swappiness != nil && *m.Swappiness <= 100 {
			set("memory", "memory.swappiness", strconv.FormatUint(*m.Swappiness, 10))
		}
		if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
			set("memory", "memory.oom_control", "1")
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		set("pids", "pids.max", pidsMax(*p.Limit))
	}
	if cpu := r.CPU; cpu != nil {
		if cpu.Shares != nil && *cpu.Shares != 0 {
			set("cpu", "cpu.shares", strconv.FormatUint(*cpu.Shares, 10))
		}
		if cpu.Period != nil && *cpu.Period != 0 {
			set("cpu", "cpu.cfs_period_us", strconv.FormatUint(*cpu.Period, 10))
		}
		if cpu.Quota != nil && *cpu.Quota != 0 {
			set("cpu", "cpu.cfs_quota_us", strconv.FormatInt(*cpu.Quota, 10))
		}
		if cpu.RealtimePeriod != nil && *cpu.RealtimePeriod != 0 {
			set("cpu", "cpu.rt_period_us", strconv.FormatUint(*cpu.RealtimePeriod, 10))
		}
		if cpu.RealtimeRuntime != nil && *cpu.RealtimeRuntime != 0 {
			set("cpu", "cpu.rt_runtime_us", strconv.FormatInt(*cpu.RealtimeRuntime, 10))
		}
		if cpu.Cpus != "" {
			set("cpuset", "cpuset.cpus", cpu.Cpus)
		}
		if cpu.Mems != "" {
			set("cpuset", "cpuset.mems", cpu.Mems)
		}
	}
	if b := r.BlockIO; b != nil {
		// This kernel's blkio has no weight files without an IO scheduler
		// that supports them: refuse rather than pretend.
		if b.Weight != nil {
			set("blkio", "blkio.weight", strconv.Itoa(int(*b.Weight)))
		}
		if b.LeafWeight != nil {
			set("blkio", "blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight)))
		}
		for _, d := range b.ThrottleReadBpsDevice {
			set("blkio", "blkio.throttle.read_bps_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate))
		}
		for _, d := range b.ThrottleWriteBpsDevice {
			set("blkio", "blkio.throttle.write_bps_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate))
		}
		for _, d := range b.ThrottleReadIOPSDevice {
			set("blkio", "blkio.throttle.read_iops_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate))
		}
		for _, d := range b.ThrottleWriteIOPSDevice {
			set("blkio", "blkio.throttle.write_iops_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate))
		}
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			set("net_cls", "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10))
		}
		for _, p := range n.Priorities {
			set("net_prio", "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority))
		}
	}
	for _, h := range r.HugepageLimits {
		set("hugetlb", "hugetlb."+h.Pagesize+".limit_in_bytes", strconv.FormatUint(h.Limit, 10))
	}
	for _, d := range r.Devices {
		file := "devices.deny"
		if d.Allow {
			file = "devices.allow"
		}
		set("devices", file, deviceRule(d))
	}
	return errors.Join(w...)
}

func pidsMax(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

func deviceRule(d specs.LinuxDeviceCgroup) string {
	typ := d.Type
	if typ == "" {
		typ = "a"
	}
	num := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return strconv.FormatInt(*p, 10)
	}
	access := d.Access
	if access == "" {
		access = "rwm"
	}
	if typ == "a" {
		return "a"
	}
	return fmt.Sprintf("%s %s:%s %s", typ, num(d.Major), num(d.Minor), access)
}

// applyV2 maps the v1-shaped spec values onto v2 files, and the device
// rules onto an eBPF program (devices_bpf_linux.go).
func (c *cgroup) applyV2(r *specs.LinuxResources) error {
	d := c.dirs[""]
	var w []error
	set := func(file, val string) { w = append(w, writeCg(d, file, val)) }
	w = append(w, attachDeviceFilter(d, r.Devices))
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			set("memory.max", memMax(*m.Limit))
		}
		if m.Reservation != nil {
			set("memory.low", strconv.FormatInt(*m.Reservation, 10))
		}
		if m.Swap != nil && m.Limit != nil && *m.Swap > 0 {
			set("memory.swap.max", strconv.FormatInt(*m.Swap-*m.Limit, 10))
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		set("pids.max", pidsMax(*p.Limit))
	}
	if cpu := r.CPU; cpu != nil {
		if cpu.Shares != nil && *cpu.Shares != 0 {
			set("cpu.weight", strconv.FormatUint(1+((*cpu.Shares-2)*9999)/262142, 10))
		}
		if cpu.Quota != nil && *cpu.Quota != 0 {
			period := uint64(100000)
			if cpu.Period != nil && *cpu.Period != 0 {
				period = *cpu.Period
			}
			q := "max"
			if *cpu.Quota > 0 {
				q = strconv.FormatInt(*cpu.Quota, 10)
			}
			set("cpu.max", fmt.Sprintf("%s %d", q, period))
		}
		if cpu.Cpus != "" {
			set("cpuset.cpus", cpu.Cpus)
		}
		if cpu.Mems != "" {
			set("cpuset.mems", cpu.Mems)
		}
	}
	for k, v := range r.Unified {
		if strings.Contains(k, "/") {
			w = append(w, fmt.Errorf("%w: unified key %q", ErrInvalid, k))
			continue
		}
		set(k, v)
	}
	return errors.Join(w...)
}

func memMax(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// pids lists every process of the cgroup.
func (c *cgroup) pids() ([]int, error) {
	d := c.dir("pids")
	if d == "" {
		d = c.dir("memory")
	}
	b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

func (c *cgroup) freeze(on bool) error {
	if c.v2 {
		v := "0"
		if on {
			v = "1"
		}
		return writeCg(c.dirs[""], "cgroup.freeze", v)
	}
	state := "THAWED"
	if on {
		state = "FROZEN"
	}
	d := c.dir("freezer")
	if err := writeCg(d, "freezer.state", state); err != nil {
		return err
	}
	for i := 0; i < 1000; i++ {
		if readCg(d, "freezer.state") == state {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("freezer stuck before %s", state)
}

// destroy kills whatever is left and removes the cgroup directories.
func (c *cgroup) destroy() error {
	for i := 0; i < 200; i++ {
		pids, _ := c.pids()
		if len(pids) == 0 {
			break
		}
		if i == 0 && !c.v2 {
			c.freeze(false) // a frozen task cannot die
		}
		if c.v2 {
			writeCg(c.dirs[""], "cgroup.freeze", "0")
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var errs []error
	if c.v2 {
		errs = append(errs, detachDeviceFilters(c.dirs[""]))
	}
	for _, d := range c.dirs {
		var err error
		for i := 0; i < 1000; i++ {
			err = os.Remove(d)
			if err == nil || os.IsNotExist(err) {
				err = nil
				break
			}
			time.Sleep(500 * time.Microsecond) // EBUSY until the kernel has let go of the last task
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stats is the live resource usage of a container, for berth stats.
type Stats struct {
	MemoryUsage uint64 `json:"memoryUsage"`
	MemoryLimit uint64 `json:"memoryLimit"`
	CPUUsageNs  uint64 `json:"cpuUsageNs"`
	Pids        uint64 `json:"pids"`
	PidsLimit   uint64 `json:"pidsLimit"`
}

func (c *cgroup) stats() (*Stats, error) {
	var s Stats
	num := func(v string) uint64 { n, _ := strconv.ParseUint(v, 10, 64); return n }
	if c.v2 {
		d := c.dirs[""]
		if _, err := os.Stat(d); err != nil {
			return nil, err
		}
		s.MemoryUsage = num(readCg(d, "memory.current"))
		s.MemoryLimit = num(readCg(d, "memory.max"))
		for _, l := range strings.Split(readCg(d, "cpu.stat"), "\n") {
			if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
				s.CPUUsageNs = num(v) * 1000
			}
		}
		s.Pids = num(readCg(d, "pids.current"))
		s.PidsLimit = num(readCg(d, "pids.max"))
		return &s, nil
	}
	if _, err := os.Stat(c.dir("memory")); err != nil {
		return nil, err
	}
	s.MemoryUsage = num(readCg(c.dir("memory"), "memory.usage_in_bytes"))
	s.MemoryLimit = num(readCg(c.dir("memory"), "memory.limit_in_bytes"))
	s.CPUUsageNs = num(readCg(c.dir("cpuacct"), "cpuacct.usage"))
	s.Pids = num(readCg(c.dir("pids"), "pids.current"))
	s.PidsLimit = num(readCg(c.dir("pids"), "pids.max"))
	return &s, nil
}

// v1Dirs is what the container's cgroup mount needs on v1 (nil on v2):
// its directory in each hierarchy it is in (another would show the
// host's tree).
func (c *cgroup) v1Dirs() map[string]string {
	if c.v2 {
		return nil
	}
	return maps.Clone(c.dirs)
}
