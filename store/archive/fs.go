package archive

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/fsroot"
)

// inRoot resolves name below the directory rootfd as if rootfd were "/":
// symlinks and ".." are clamped to it, magic links refused, and a layer is
// never unpacked across a mount point.
func inRoot(rootfd int, name string, flags int) (int, error) {
	return fsroot.Openat(rootfd, name, flags, 0, fsroot.NoXDev)
}

// mkdirAllIn opens directory dir below rootfd, creating missing components
// with mode 0755 (as tar does for directories an archive never lists). It
// walks one component at a time from the root, so a deep path costs linear,
// not quadratic, work; a component that is a symlink is resolved as a whole
// prefix with RESOLVE_IN_ROOT (the kernel's 40-link limit bounds those).
func mkdirAllIn(rootfd int, dir string) (int, error) {
	fd, err := inRoot(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != unix.ENOENT {
		return fd, err
	}
	parts := strings.Split(dir, "/")
	if len(parts) > maxDepth {
		return -1, ErrLimit
	}
	cur, err := inRoot(rootfd, ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	for i, p := range parts {
		next, err := unix.Openat(cur, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			if err = unix.Mkdirat(cur, p, 0o755); err == nil || err == unix.EEXIST {
				next, err = unix.Openat(cur, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		if err == unix.ELOOP || err == unix.ENOTDIR {
			// A symlink (or not a directory): resolve the prefix as the
			// container would see it, clamped to the root.
			next, err = inRoot(rootfd, strings.Join(parts[:i+1], "/"), unix.O_PATH|unix.O_DIRECTORY)
		}
		unix.Close(cur)
		if err != nil {
			return -1, &os.PathError{Op: "mkdir", Path: strings.Join(parts[:i+1], "/"), Err: err}
		}
		cur = next
	}
	return cur, nil
}

// maxDepth bounds path components: real images stay far below it, and a
// hostile archive cannot make each entry cost thousands of lookups.
const maxDepth = 256

// removeAt removes name in dirfd and, for a directory, everything below it,
// never following a symlink.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	if err := clearDirAt(dirfd, name, nil); err != nil {
		return err
	}
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// clearDirAt removes the children of directory name in dirfd, except those
// keep reports true for.
func clearDirAt(dirfd int, name string, keep func(child string) bool) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	// Read everything first: unlinking while iterating may skip entries.
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if keep != nil && keep(n) {
			continue
		}
		if err := removeAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}
