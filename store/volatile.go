package store

import (
	"sync"

	"github.com/berth-dev/berth/kernel"
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
var overlayVolatile = sync.OnceValue(func() bool { return kernel.AtLeast(5, 10) })
