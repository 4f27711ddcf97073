package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/fsroot"
)

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"dirsync": {false, unix.MS_DIRSYNC}, "remount": {false, unix.MS_REMOUNT},
	"mand": {false, unix.MS_MANDLOCK}, "nomand": {true, unix.MS_MANDLOCK},
	"atime": {true, unix.MS_NOATIME}, "noatime": {false, unix.MS_NOATIME},
	"diratime": {true, unix.MS_NODIRATIME}, "nodiratime": {false, unix.MS_NODIRATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
	"defaults": {false, 0},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseMountOptions splits spec options into flags, propagation and data.
func parseMountOptions(opts []string) (flags uintptr, prop []uintptr, data string) {
	var d []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
		} else if p, ok := propagationFlags[o]; ok {
			prop = append(prop, p)
		} else if o != "tmpcopyup" && !strings.HasPrefix(o, "idmap") && !strings.HasPrefix(o, "ridmap") {
			d = append(d, o)
		}
	}
	return flags, prop, strings.Join(d, ",")
}

type defaultDevice struct {
	path         string
	major, minor uint32
}

var defaultDevices = []defaultDevice{
	{"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
	{"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
}

func setupRootfs(cfg *initConfig) error {
	spec := cfg.Spec
	rootfs := cfg.Rootfs
	prop := uintptr(0)
	if spec.Linux != nil && spec.Linux.RootfsPropagation != "" {
		p, ok := propagationFlags[spec.Linux.RootfsPropagation]
		if !ok {
			return fmt.Errorf("%w: rootfsPropagation %q", ErrInvalid, spec.Linux.RootfsPropagation)
		}
		prop = p
	}
	// Nothing the container mounts may propagate back to the host. The
	// requested propagation applies to the container's / after pivot_root.
	// In the host's own mount namespace its propagation is left alone: the
	// rootfs bind below is made private instead, and everything the
	// container mounts sits on it.
	if !cfg.HostMountNS {
		if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("make / rslave: %w", err)
		}
	}
	if len(cfg.RootfsMounts) > 0 {
		for _, m := range cfg.RootfsMounts {
			flags, _, data := parseMountOptions(m.Options)
			target := filepath.Join(rootfs, m.Destination)
			if err := ClearVolatile(m); err != nil {
				return fmt.Errorf("mount rootfs %s on %s: %w", m.Type, target, err)
			}
			if err := unix.Mount(m.Source, target, m.Type, flags, data); err != nil {
				return fmt.Errorf("mount rootfs %s on %s: %w", m.Type, target, err)
			}
		}
	} else {
		// In the host's namespace the rootfs is bound on a directory of
		// the state root, which delete detaches with all mounted there.
		from := rootfs
		if cfg.RootfsBind != "" {
			from = cfg.RootfsBind
		}
		if err := unix.Mount(from, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind rootfs: %w", err)
		}
	}
	// pivot_root refuses shared mounts around the new root: make the
	// rootfs and the mount holding it private (only in this namespace).
	if err := unix.Mount("", rootfs, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make rootfs private: %w", err)
	}
	if parent := mountPointOf(filepath.Dir(rootfs)); parent != "" && !cfg.HostMountNS {
		if err := unix.Mount("", parent, "", unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make %s private: %w", parent, err)
		}
	}
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	devTmpfs := false
	for _, m := range spec.Mounts {
		if err := mountOne(root, cfg, m); err != nil {
			return err
		}
		if filepath.Clean(m.Destination) == "/dev" && m.Type == "tmpfs" {
			devTmpfs = true
		}
	}
	if err := createDevices(root, cfg, devTmpfs); err != nil {
		return err
	}
	if cfg.HostMountNS {
		// pivot_root would move the host's root: chroot, as runc does.
		if err := unix.Chdir(rootfs); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
	} else if err := pivotRoot(rootfs); err != nil {
		return err
	}
	if prop != 0 {
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("rootfs propagation: %w", err)
		}
	}
	if spec.Linux != nil {
		// Before /proc/sys turns read-only.
		if err := writeSysctls(spec.Linux.Sysctl); err != nil {
			return err
		}
		for _, p := range spec.Linux.MaskedPaths {
			if err := maskPath(p); err != nil {
				return err
			}
		}
		for _, p := range spec.Linux.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return err
			}
		}
	}
	if spec.Root != nil && spec.Root.Readonly {
		if err := remountReadonly("/"); err != nil {
			return fmt.Errorf("read-only rootfs: %w", err)
		}
	}
	return nil
}

// openInRoot opens path inside root, never leaving it whatever symlinks
// the image holds, creating missing directories (and the last component as
// a file when file is true). strict refuses any symlink on the way: proc,
// sysfs and /dev must be real directories of the image.
func openInRoot(root *os.File, path string, file, strict bool) (*os.File, error) {
	var extra uint64
	if strict {
		extra = fsroot.NoSymlinks
	}
	rel := fsroot.Rel(path)
	fd, err := fsroot.Openat(int(root.Fd()), rel, unix.O_PATH, 0, extra)
	if err == nil {
		return os.NewFile(uintptr(fd), path), nil
	}
	if err != unix.ENOENT {
		return nil, fmt.Errorf("open %s in rootfs: %w", path, err)
	}
	parent, err := openInRoot(root, filepath.Dir("/"+rel), false, strict)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	// Reopen the parent as a real directory fd: mkdirat needs one.
	pdir, err := unix.Openat(int(parent.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open parent of %s: %w", path, err)
	}
	defer unix.Close(pdir)
	base := filepath.Base(rel)
	if file {
		f, err := unix.Openat(pdir, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
		if err != nil && err != unix.EEXIST {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		if err == nil {
			unix.Close(f)
		}
	} else if err := unix.Mkdirat(pdir, base, 0o755); err != nil && err != unix.EEXIST {
		return nil, fmt.Errorf("mkdir %s: %w", path, err)
	}
	fd, err = fsroot.Openat(int(root.Fd()), rel, unix.O_PATH, 0, extra)
	if err != nil {
		return nil, fmt.Errorf("open %s in rootfs: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

func mountOne(root *os.File, cfg *initConfig, m specs.Mount) error {
	flags, props, data := parseMountOptions(m.Options)
	typ := m.Type
	if typ == "" && flags&unix.MS_BIND != 0 {
		typ = "bind"
	}
	strict := typ == "proc" || typ == "sysfs" || filepath.Clean(m.Destination) == "/dev"
	file := false
	if typ == "bind" {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("bind source %s: %w", m.Source, err)
		}
		file = !fi.IsDir()
		flags |= unix.MS_BIND
	}
	if typ == "cgroup" || typ == "cgroup2" {
		return mountCgroup(root, cfg, m, flags)
	}
	target, err := openInRoot(root, m.Destination, file, strict)
	if err != nil {
		return err
	}
	defer target.Close()
	tp := fdPath(target)
	src := m.Source
	if typ == "bind" {
		err = unix.Mount(src, tp, "", flags&(unix.MS_BIND|unix.MS_REC), "")
		if err == nil && flags&^(unix.MS_BIND|unix.MS_REC) != 0 {
			err = remountInRoot(root, m.Destination, flags)
		}
	} else {
		if src == "" {
			src = typ
		}
		err = unix.Mount(src, tp, typ, flags, data)
		if err != nil && typ == "sysfs" && err == unix.EPERM {
			// Sharing the host network namespace: sysfs may only be bound.
			err = unix.Mount("/sys", tp, "", unix.MS_BIND|unix.MS_REC, "")
			if err == nil {
				err = remountInRoot(root, m.Destination, flags|unix.MS_RDONLY)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, typ, m.Destination, err)
	}
	if len(props) == 0 {
		return nil
	}
	// The fd still names the directory under the new mount: reopen.
	mnt, err := openInRoot(root, m.Destination, file, strict)
	if err != nil {
		return err
	}
	defer mnt.Close()
	for _, p := range props {
		if err := unix.Mount("", fdPath(mnt), "", p, ""); err != nil {
			return fmt.Errorf("propagation of %s: %w", m.Destination, err)
		}
	}
	return nil
}

// remountInRoot remounts the mount now on dest (a fd opened before the
// mount would name the directory underneath it).
func remountInRoot(root *os.File, dest string, flags uintptr) error {
	f, err := openInRoot(root, dest, false, false)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := remountBind(fdPath(f), flags); err != nil {
		return fmt.Errorf("remount %s: %w", dest, err)
	}
	return nil
}

// remountBind applies flags to a bind mount, keeping the flags the kernel
// locked on the source (nosuid, nodev, noexec, atime) or it refuses.
func remountBind(target string, flags uintptr) error {
	flags = flags&^(unix.MS_REC) | unix.MS_BIND | unix.MS_REMOUNT
	err := unix.Mount("", target, "", flags, "")
	if err == nil || err != unix.EPERM {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return err
	}
	locked := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	return unix.Mount("", target, "", flags|locked, "")
}

func remountReadonly(path string) error { return remountBind(path, unix.MS_RDONLY) }

// mountCgroup gives the container a read-only view of its own cgroups: the
// cgroup2 filesystem on v2; on v1, a tmpfs holding, per hierarchy, a bind
// of the container's cgroup directory (what a cgroup mount in its cgroup
// namespace would show: that directory as the root).
//
// Binds, not cgroup mounts: a v1 cgroup mount takes the kernel's
// cgroup_mutex, which the monitor's cgroup work for other containers
// (creating, removing, moving a spare into its staging cgroups: each
// migration waits for an RCU grace period with it held) keeps for
// milliseconds. The first mount of a recreated container waited 2.5 to
// 7 ms for it, a third of the create. A bind takes no cgroup lock.
func mountCgroup(root *os.File, cfg *initConfig, m specs.Mount, flags uintptr) error {
	flags &^= unix.MS_BIND | unix.MS_REC
	flags |= unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	target, err := openInRoot(root, m.Destination, false, true)
	if err != nil {
		return err
	}
	defer target.Close()
	if cfg.UserNS && cfg.CgroupV1 != nil {
		// v1 hierarchies cannot be mounted from a user namespace.
		if err := unix.Mount("/sys/fs/cgroup", fdPath(target), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind cgroups on %s: %w", m.Destination, err)
		}
		return nil
	}
	if cfg.CgroupV1 == nil {
		if err := unix.Mount("cgroup2", fdPath(target), "cgroup2", flags, ""); err != nil {
			return fmt.Errorf("mount cgroup2 on %s: %w", m.Destination, err)
		}
		return nil
	}
	if err := unix.Mount("tmpfs", fdPath(target), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return fmt.Errorf("mount cgroup tmpfs on %s: %w", m.Destination, err)
	}
	for name, cgDir := range cfg.CgroupV1 {
		dest := filepath.Join(m.Destination, name)
		dir, err := openInRoot(root, dest, false, true)
		if err != nil {
			return err
		}
		err = unix.Mount(cgDir, fdPath(dir), "", unix.MS_BIND, "")
		dir.Close()
		if err != nil {
			return fmt.Errorf("mount cgroup %s: %w", name, err)
		}
		// A bind ignores the other flags: they take a remount, of the
		// mount just made (dir is the directory beneath it).
		if err := remountInRoot(root, dest, flags); err != nil {
			return err
		}
	}
	if flags&unix.MS_RDONLY != 0 {
		return remountInRoot(root, m.Destination, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
	}
	return nil
}

func createDevices(root *os.File, cfg *initConfig, devTmpfs bool) error {
	spec := cfg.Spec
	var devs []specs.LinuxDevice
	if devTmpfs {
		for _, d := range defaultDevices {
			mode := os.FileMode(0o666)
			devs = append(devs, specs.LinuxDevice{Path: d.path, Type: "c", Major: int64(d.major), Minor: int64(d.minor), FileMode: &mode})
		}
	}
	if spec.Linux != nil {
		devs = append(devs, spec.Linux.Devices...)
	}
	for _, d := range devs {
		if cfg.UserNS {
			// mknod is refused in a user namespace: bind the host's node.
			if err := mountOne(root, cfg, specs.Mount{Destination: d.Path, Type: "bind", Source: d.Path, Options: []string{"bind"}}); err != nil {
				return err
			}
			continue
		}
		if err := mknodInRoot(root, d); err != nil {
			return err
		}
	}
	if !devTmpfs {
		return nil
	}
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"}}
	dev, err := openInRoot(root, "/dev", false, true)
	if err != nil {
		return err
	}
	defer dev.Close()
	dfd, err := unix.Openat(int(dev.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev: %w", err)
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if unix.Fstatat(dfd, "pts/ptmx", &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		links = append(links, [2]string{"pts/ptmx", "ptmx"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dfd, l[1]); err != nil && err != unix.EEXIST {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

func mknodInRoot(root *os.File, d specs.LinuxDevice) error {
	parent, err := openInRoot(root, filepath.Dir(d.Path), false, true)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd, err := unix.Openat(int(parent.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open parent of %s: %w", d.Path, err)
	}
	defer unix.Close(pfd)
	var typ uint32
	switch d.Type {
	case "c", "u":
		typ = unix.S_IFCHR
	case "b":
		typ = unix.S_IFBLK
	case "p":
		typ = unix.S_IFIFO
	default:
		return fmt.Errorf("%w: device %s type %q", ErrInvalid, d.Path, d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	base := filepath.Base(d.Path)
	// Whatever the image put there (a symlink to a host path, a file) is
	// replaced, never followed.
	unix.Unlinkat(pfd, base, 0)
	if err := unix.Mknodat(pfd, base, typ|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		return fmt.Errorf("mknod %s: %w", d.Path, err)
	}
	// mknod applies the umask; the spec's mode is exact.
	if err := unix.Fchmodat(pfd, base, perm, 0); err != nil {
		return fmt.Errorf("chmod %s: %w", d.Path, err)
	}
	uid, gid := -1, -1
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", d.Path, err)
	}
	return nil
}

func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return fmt.Errorf("chdir rootfs: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; no
	// directory in the image is needed and nothing is left to clean up.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("chdir old root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

func maskPath(p string) error {
	err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EINVAL) {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0k")
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	return nil
}

func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	if err := remountBind(p, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	return nil
}

// mountPointOf returns the mount point under which path lives: the last
// directory up from path with path's mount id (statx; a few calls instead
// of reading and parsing mountinfo, ~0.4 ms of every init's path), or from
// mountinfo where statx does not give mount ids.
func mountPointOf(path string) string {
	if mp, ok := mountPointByID(path); ok {
		return mp
	}
	return mountPointFromInfo(path)
}

func mountPointByID(path string) (string, bool) {
	id := func(p string) (uint64, bool) {
		var st unix.Statx_t
		if unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st) != nil || st.Mask&unix.STATX_MNT_ID == 0 {
			return 0, false
		}
		return st.Mnt_id, true
	}
	p := filepath.Clean(path)
	mnt, ok := id(p)
	if !ok {
		return "", false
	}
	for p != "/" {
		up := filepath.Dir(p)
		upMnt, ok := id(up)
		if !ok {
			return "", false
		}
		if upMnt != mnt {
			return p, true
		}
		p = up
	}
	return "/", true
}

func mountPointFromInfo(path string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	best := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	return best
}
