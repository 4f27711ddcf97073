package runtime

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExitCode is a wait status as a shell reports it: the exit status, or
// 128+N when signal N ended the process.
func ExitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// WaitForeground waits for a process the caller runs in the foreground
// (exec, run), forwarding the caller's interrupt, termination, hangup and
// quit signals to it, and returns its ExitCode.
func WaitForeground(proc *os.Process) (int, error) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			proc.Signal(s)
		}
	}()
	st, err := proc.Wait()
	if err != nil {
		return -1, err
	}
	return ExitCode(st.Sys().(syscall.WaitStatus)), nil
}

// ParseSignal reads a signal as users and compose files write it: KILL,
// SIGKILL, kill or 9.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
