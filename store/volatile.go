package store

import (
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// overlayVolatile tells whether snapshots are mounted with overlayfs's
// "volatile" option (Linux 5.10 and later): no sync of the upper file
// system, ever. Without it the last unmount of a container's overlay syncs
// the whole file system the snapshot lives on (sync_filesystem of the
// upper layer): right after an `up` of 50 containers on this machine's disk
// a recreate's removal of the old container started the writeback of all
// the `up` wrote, and every synchronous step of the successor (its record's
// fsync, directory reads) queued behind it. A container's writable layer
// was never more durable than the page cache for what the container
// writes; what volatile gives up is the ordering of overlay's own copy-ups
// across a power loss, as podman's transient mounts do. The runtime clears
// the mark the kernel leaves in the work directory before each mount
// (runtime.ClearVolatile).
var overlayVolatile = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 10)
})

// kernelAtLeast compares a kernel release ("6.1.0-18-amd64") with
// major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	digits := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 {
		digits = len(parts[1])
	}
	mi, err2 := strconv.Atoi(parts[1][:digits])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
