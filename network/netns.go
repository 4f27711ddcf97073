package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNS runs fn on an OS thread switched into ns. Sysctl files under
// /proc/sys/net and sockets opened by fn belong to ns; a child started by fn
// is born in ns.
func inNS(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked so that the Go runtime retires it rather
		// than reuse a thread in the wrong namespace.
		return fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// isNetnsMount reports whether path is a bind mount of a network namespace.
func isNetnsMount(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// createNetns makes a new network namespace and pins it at path with a bind
// mount, so that it outlives this process and the runtime can join it by
// path. An existing namespace at path is kept.
func createNetns(path string) error {
	if isNetnsMount(path) {
		return nil
	}
	if err := mountPoint(path); err != nil {
		return err
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	fresh, err := netns.New()
	if err != nil {
		// unshare failed: the thread is still where it was.
		runtime.UnlockOSThread()
		return fmt.Errorf("unshare netns: %w", err)
	}
	fresh.Close()
	merr := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	if merr != nil {
		os.Remove(path)
		return fmt.Errorf("bind netns to %s: %w", path, merr)
	}
	return nil
}

// mountPoint makes the empty file a namespace is pinned on.
func mountPoint(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	return f.Close()
}

// removeNetns unpins the namespace at path; the kernel frees it (and every
// interface in it) once no process uses it.
func removeNetns(path string) error {
	for isNetnsMount(path) {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// writeSysctl sets a /proc/sys value inside ns.
func writeSysctl(ns netns.NsHandle, key, value string) error {
	return inNS(ns, func() error {
		p := filepath.Join("/proc/sys", filepath.FromSlash(key))
		cur, err := os.ReadFile(p)
		if err == nil && string(cur) == value+"\n" {
			return nil
		}
		return os.WriteFile(p, []byte(value), 0o644)
	})
}
