package runtime

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// A container's mount namespace is held open by its monitor while the
// container runs, and let go in the background once its process is seen
// to exit.
//
// The kernel tears a mount namespace down when its last reference goes:
// every mount of the container is unmounted, then it waits for an RCU
// grace period. Without another reference that happens in the exit of the
// container's last process, before its parent is told: a stop waited 5 to
// 17 ms between SIGKILL and the exit of a `sleep` (probe timestamps on
// this machine), most of it that teardown, and every run --rm waited for
// it before its delete. Held here, the exit is seen at once and the
// teardown runs on a goroutine of the monitor. Nothing the host sees waits
// for it: the mounts are the container's own namespace's, which no process
// is in any longer (a delete removes the cgroup and the state directory,
// whose rootfs directory was a mount point only in that namespace).
type heldNS int

// holdMountNS opens pid's mount namespace; -1 when it cannot (the process
// is gone already: nothing to hold).
func holdMountNS(pid int) heldNS {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return heldNS(fd)
}

// letGo drops the reference, in the background: the teardown is the
// kernel's work on whoever drops the last one.
func (h heldNS) letGo() {
	if h >= 0 {
		go unix.Close(int(h))
	}
}
