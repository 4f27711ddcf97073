// Package fsroot resolves paths inside a directory that stands for a root
// filesystem — an image being written, a layer being unpacked, a running
// container's /proc/PID/root — so that symlinks and ".." planted in it can
// never lead out of it, whatever they point to.
//
// The kernel does the resolution (openat2 with RESOLVE_IN_ROOT: the
// directory is "/" for absolute links and ".." stops at it), so there is no
// check-then-use window; magic links (/proc/self/fd/N) are refused.
package fsroot

import (
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Extra resolve flags for Openat, beyond the in-root resolution every call
// gets.
const (
	// NoSymlinks refuses any symlink on the way (for paths that must be real
	// directories of the image, such as /proc and /dev).
	NoSymlinks = unix.RESOLVE_NO_SYMLINKS
	// NoXDev refuses to cross a mount point.
	NoXDev = unix.RESOLVE_NO_XDEV
)

// Openat opens name (absolute or relative, cleaned here) below the directory
// root as if root were "/". flags and mode are open(2)'s; O_CLOEXEC is always
// added. extra adds resolve flags (NoSymlinks, NoXDev). Errors are the bare
// errno, so callers can compare them and name the path their own way.
func Openat(root int, name string, flags int, mode uint32, extra uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | extra,
	}
	rel := Rel(name)
	for {
		fd, err := unix.Openat2(root, rel, &how)
		// openat2 asks for a retry when a rename raced the lookup.
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// Rel is name cleaned and made relative to the root: "/a/../b" → "b", "/" →
// ".".
func Rel(name string) string {
	rel := strings.TrimPrefix(path.Clean("/"+name), "/")
	if rel == "" {
		return "."
	}
	return rel
}
