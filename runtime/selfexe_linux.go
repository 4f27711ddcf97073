package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Every child is started from a sealed in-memory copy of the berth binary,
// never from the file on disk. A container process that reaches a berth
// child through /proc/<pid>/exe (CVE-2019-5736) finds a memfd whose seals
// forbid writing, shrinking and growing, so the host binary cannot be
// overwritten.
var selfExe struct {
	mu   sync.Mutex
	file *os.File
}

// sealedSelf is the sealed copy, made once. A child gets it among its
// files (startChild) and execs /proc/self/fd/<its slot>: Go's child setup
// renumbers fds above the highest one it is given (its error pipe goes to
// that number plus one), so a copy named by its number in this process
// was overwritten in the child whenever it sat just there. An up of 50
// services failed so, about one time in ten, with "fork/exec
// /proc/self/fd/200: permission denied" (the exec of a pipe).
func sealedSelf() (*os.File, error) {
	selfExe.mu.Lock()
	defer selfExe.mu.Unlock()
	if selfExe.file == nil {
		f, err := makeSealedSelf() // an error is not kept: the next child tries again
		if err != nil {
			return nil, err
		}
		selfExe.file = f
	}
	return selfExe.file, nil
}

func makeSealedSelf() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return sealedCopy("berth", src)
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
