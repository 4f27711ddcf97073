package runtime

import (
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath resolves args[0] against the process's PATH inside the container.
func lookPath(p *specs.Process) (string, error) {
	if len(p.Args) == 0 {
		return "", fmt.Errorf("%w: process.args is empty", ErrInvalid)
	}
	name := p.Args[0]
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", fmt.Errorf("exec %s: %w", name, err)
		}
		return name, nil
	}
	path := defaultPath
	for _, e := range p.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		cand := filepath.Join(dir, name)
		if checkExecutable(cand) == nil {
			return cand, nil
		}
	}
	return "", fmt.Errorf("exec %s: executable file not found in $PATH", name)
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("permission denied")
	}
	return nil
}

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

func setRlimits(rls []specs.POSIXRlimit) error {
	for _, rl := range rls {
		res, ok := rlimitNames[rl.Type]
		if !ok {
			return fmt.Errorf("%w: unknown rlimit %q", ErrInvalid, rl.Type)
		}
		lim := unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		if err := unix.Prlimit(0, res, &lim, nil); err != nil {
			return fmt.Errorf("setrlimit %s soft %d hard %d (raising a hard limit needs CAP_SYS_RESOURCE): %w", rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	return nil
}

var namespacedSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
	"kernel.domainname": true, "kernel.hostname": true,
}

// checkSysctl admits only sysctls that belong to a namespace the
// container owns: writing another would change the host (the init still
// holds every capability when it writes them).
func checkSysctl(k string, ownNet bool) error {
	if strings.Contains(k, "..") || strings.HasPrefix(k, "/") {
		return fmt.Errorf("%w: bad sysctl %q", ErrInvalid, k)
	}
	if namespacedSysctls[k] || strings.HasPrefix(k, "fs.mqueue.") {
		return nil
	}
	if strings.HasPrefix(k, "net.") {
		if !ownNet {
			return fmt.Errorf("%w: sysctl %s needs the container's own network namespace", ErrInvalid, k)
		}
		return nil
	}
	return fmt.Errorf("%w: sysctl %s is not namespaced", ErrInvalid, k)
}

func writeSysctls(sysctl map[string]string) error {
	for k, v := range sysctl {
		p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// finalizeAndExec drops privileges in the order the kernel demands and
// execs. Without no_new_privs, loading a seccomp filter needs CAP_SYS_ADMIN,
// so it happens before the capabilities are dropped (Docker's profile allows
// the capset/setresuid calls that follow).
func finalizeAndExec(p *specs.Process, path string, filter []unix.SockFilter, reaper bool) error {
	// Nothing of the runtime may leak into the container: every fd but
	// stdio becomes close-on-exec, including ones a library opened. First,
	// as a seccomp profile may not know close_range.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	if !p.NoNewPrivileges {
		if err := loadSeccomp(filter); err != nil {
			return err
		}
	}
	if err := dropBounding(p.Capabilities); err != nil {
		return err
	}
	if err := setIDs(p.User); err != nil {
		return err
	}
	if err := applyCaps(p.Capabilities); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
		if err := loadSeccomp(filter); err != nil {
			return err
		}
	}
	env := p.Env
	if reaper {
		return runReaper(path, p.Args, env)
	}
	err := unix.Exec(path, p.Args, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

func setIDs(u specs.User) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return err
	}
	// Raw syscalls on purpose: credentials are per thread in the kernel
	// and only this (locked) thread execs; libc would broadcast to all.
	gids := make([]uint32, len(u.AdditionalGids))
	copy(gids, u.AdditionalGids)
	var gp unsafe.Pointer
	if len(gids) > 0 {
		gp = unsafe.Pointer(&gids[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(gp), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", u.UID, e)
	}
	if u.Umask != nil {
		unix.Umask(int(*u.Umask))
	}
	return nil
}

// runReaper is PID 1 for init: true: it starts the process, forwards
// signals to it, reaps every orphan and exits with the process's status.
func runReaper(path string, args, env []string) error {
	if startFifo != nil {
		startFifo.Close() // this process never execs: release Start now
	}
	// It lives as long as the container: collect garbage again (a
	// child runs with GOGC=off, childGoEnv).
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	for sig := range sigs {
		s := sig.(syscall.Signal)
		if s != syscall.SIGCHLD {
			syscall.Kill(pid, s)
			continue
		}
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if p <= 0 || err != nil {
				break
			}
			if p == pid {
				if ws.Signaled() {
					os.Exit(128 + int(ws.Signal()))
				}
				os.Exit(ws.ExitStatus())
			}
		}
	}
	return nil
}
