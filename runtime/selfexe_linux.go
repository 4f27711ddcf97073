package runtime

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Every child is started from a sealed in-memory copy of the berth binary,
// never from the file on disk. A container process that reaches a berth
// child through /proc/<pid>/exe (CVE-2019-5736) finds a memfd whose seals
// forbid writing, shrinking and growing, so the host binary cannot be
// overwritten.
var selfExe struct {
	mu  sync.Mutex
	fd  int
	id  [2]uint64 // device and inode of the memfd, to know it again
	err error
	ok  bool
}

// sealedSelf is the path children exec: the sealed copy's fd. It checks
// that the fd still is that copy: `up` of 50 services failed now and then
// with "fork/exec /proc/self/fd/200: permission denied", the error of an
// exec of a fifo or a socket, as if the number had been closed by
// someone else and reused (cause not found). A number found reused is
// reported on stderr (the monitor's log) and a new copy made.
func sealedSelf() (string, error) {
	selfExe.mu.Lock()
	defer selfExe.mu.Unlock()
	if selfExe.ok && !isSealedSelf(selfExe.fd) {
		fmt.Fprintf(os.Stderr, "berth: fd %d no longer holds the sealed copy of berth (%s); making a new one\n",
			selfExe.fd, describeFd(selfExe.fd))
		selfExe.ok = false
	}
	if !selfExe.ok && selfExe.err == nil {
		selfExe.fd, selfExe.err = makeSealedSelf()
		if selfExe.err == nil {
			var st unix.Stat_t
			if selfExe.err = unix.Fstat(selfExe.fd, &st); selfExe.err == nil {
				selfExe.id, selfExe.ok = [2]uint64{st.Dev, st.Ino}, true
			}
		}
	}
	if selfExe.err != nil {
		return "", selfExe.err
	}
	// The fd sits high (see makeSealedSelf), above anything a child's
	// stdio setup renumbers, and the child execs its own inherited copy:
	// a child in a user namespace may not reach this process's fds.
	return "/proc/self/fd/" + strconv.Itoa(selfExe.fd), nil
}

// selfExeFd is the fd of the sealed copy (-1 when there is none).
func selfExeFd() int {
	selfExe.mu.Lock()
	defer selfExe.mu.Unlock()
	if !selfExe.ok {
		return -1
	}
	return selfExe.fd
}

func isSealedSelf(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && [2]uint64{st.Dev, st.Ino} == selfExe.id
}

// describeFd names what an fd is, for the report above.
func describeFd(fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err.Error()
	}
	target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return fmt.Sprintf("mode %o, %s", st.Mode&unix.S_IFMT, target)
}

func makeSealedSelf() (int, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return -1, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "berth-memfd")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return -1, fmt.Errorf("copy self: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return -1, fmt.Errorf("seal self: %w", err)
	}
	// Keep the *os.File from closing the fd when collected.
	newFd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 200)
	dst.Close()
	if err != nil {
		return -1, err
	}
	return newFd, nil
}

// pidStartTime reads field 22 of /proc/pid/stat: with the pid, it names a
// process uniquely across pid reuse.
func pidStartTime(pid int) (uint64, error) {
	start, _, err := procStat(pid)
	return start, err
}

// procStat reads a process's start time and its state letter from one
// read of /proc/<pid>/stat (a listing asks for every container's).
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bad stat for %d", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("bad stat for %d", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0][0], err
}

func pidAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, state, err := procStat(pid)
	if err != nil {
		return false
	}
	if start != 0 && st != start {
		return false
	}
	return state != 'Z' // a zombie is dead for our purposes
}
