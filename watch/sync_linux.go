package watch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/fsroot"
)

// containerFS writes into a running container's filesystem from the host,
// through /proc/PID/root: the container's own view of its root, mounts and
// volumes included, so no tool (tar, cp) is needed in the image. Every path
// is resolved with openat2(RESOLVE_IN_ROOT), which keeps symlinks and ".."
// planted in the container inside it: a link /app -> /etc makes the write
// land in the container's /etc, never the host's.
type containerFS struct {
	root int // O_PATH descriptor of /proc/PID/root
}

func openContainerFS(pid int) (*containerFS, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("container root of pid %d: %w", pid, err)
	}
	return &containerFS{root: fd}, nil
}

func (c *containerFS) Close() error { return unix.Close(c.root) }

func (c *containerFS) open(p string, flags int, mode uint32) (int, error) {
	return fsroot.Openat(c.root, p, flags, mode, 0)
}

// mkdirAll makes dir (absolute in the container) and returns a descriptor
// of it.
func (c *containerFS) mkdirAll(dir string) (int, error) {
	dir = path.Clean(dir)
	fd, err := c.open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == nil || !errors.Is(err, unix.ENOENT) || dir == "/" {
		return fd, err
	}
	parent, err := c.mkdirAll(path.Dir(dir))
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	if err := unix.Mkdirat(parent, path.Base(dir), 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return c.open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
}

// Put copies the host path src (file, symlink or directory tree) to dst.
// A file is written to a temporary name and renamed over the old one, so a
// process in the container never reads half a file.
func (c *containerFS) Put(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	parent, err := c.mkdirAll(path.Dir(dst))
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	name := path.Base(dst)
	switch {
	case fi.IsDir():
		return c.putDir(parent, src, dst, fi)
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		_ = c.removeAt(parent, name)
		return unix.Symlinkat(target, parent, name)
	case fi.Mode().IsRegular():
		return putFile(parent, name, src, fi)
	}
	return nil // sockets, fifos, devices: nothing to sync
}

func (c *containerFS) putDir(parent int, src, dst string, fi os.FileInfo) error {
	name := path.Base(dst)
	var st unix.Stat_t
	if err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := c.removeAt(parent, name); err != nil {
			return err
		}
	}
	if err := unix.Mkdirat(parent, name, uint32(fi.Mode().Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if ignoredName(e.Name()) {
			continue
		}
		if err := c.Put(filepath.Join(src, e.Name()), path.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func putFile(parent int, name, src string, fi os.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := ".berth-sync-" + name
	fd, err := unix.Openat(parent, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(fi.Mode().Perm()))
	if err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	out := os.NewFile(uintptr(fd), tmp)
	_, err = io.Copy(out, in)
	if err == nil {
		// the umask must not narrow what the host file allows
		err = out.Chmod(fi.Mode().Perm())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(parent, tmp, parent, name)
	}
	if err != nil {
		_ = unix.Unlinkat(parent, tmp, 0)
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return nil
}

// Remove deletes dst (a file or a whole tree); a missing one is fine.
func (c *containerFS) Remove(dst string) error {
	parent, err := c.open(path.Dir(path.Clean(dst)), unix.O_PATH|unix.O_DIRECTORY, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	return c.removeAt(parent, path.Base(dst))
}

func (c *containerFS) removeAt(parent int, name string) error {
	err := unix.Unlinkat(parent, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	dir := os.NewFile(uintptr(fd), name)
	names, err := dir.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = c.removeAt(fd, n); err != nil {
				break
			}
		}
	}
	dir.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
}
