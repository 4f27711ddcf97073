package network

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// dnsMarker is put in the responder's environment so that a pid read from
// the pid file is only trusted (and signalled) when it is really ours.
const dnsMarker = "BERTH_NETWORK_DNS="

func (m *Manager) dnsPidfile() string { return filepath.Join(m.runDir, "dns.pid") }

// dnsPid returns the pid of the running responder of this root, or 0.
func (m *Manager) dnsPid() int {
	b, err := os.ReadFile(m.dnsPidfile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 0 {
		return 0
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil || !bytes.Contains(env, []byte(dnsMarker+m.stateDir+"\x00")) {
		return 0
	}
	return pid
}

// ensureDNS starts the responder when networks exist and none runs. The
// check and the start happen under the allocation lock, which the
// responder also takes before deciding to exit.
func (m *Manager) ensureDNS(ctx context.Context) error {
	if m.opt.NoDNS || m.dnsPid() != 0 {
		return nil
	}
	var child *exec.Cmd
	err := m.mutate(ctx, func(st *diskState) error {
		if len(st.Networks) == 0 || m.dnsPid() != 0 {
			return nil
		}
		os.Remove(m.dnsPidfile())
		os.Remove(filepath.Join(m.runDir, "dns.ready"))
		cmd, err := m.dnsCommand()
		if err != nil {
			return err
		}
		// Started from a thread inside the host namespace, the child is born there.
		if err := inNS(m.host, cmd.Start); err != nil {
			return err
		}
		child = cmd
		go child.Wait() // reap it if it exits while this process lives
		// Recorded before the lock is released: a concurrent caller sees it
		// running and does not start a second one.
		return writeFileAtomic(m.dnsPidfile(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	})
	if err != nil || child == nil {
		return err
	}
	want := strconv.Itoa(child.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(m.runDir, "dns.ready")); string(b) == want {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	log, _ := os.ReadFile(filepath.Join(m.runDir, "dns.log"))
	return fmt.Errorf("dns responder did not start: %s", bytes.TrimSpace(log))
}

func (m *Manager) dnsCommand() (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if m.opt.DNSCommand != nil {
		cmd = m.opt.DNSCommand(m.stateDir, m.runDir)
	} else {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(self, "network", "dns-server", "--state-dir", m.stateDir, "--run-dir", m.runDir)
	}
	if err := os.MkdirAll(m.runDir, 0o755); err != nil {
		return nil, err
	}
	log, err := os.OpenFile(filepath.Join(m.runDir, "dns.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, dnsMarker+m.stateDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/" // never pin the caller's project directory
	return cmd, nil
}

// stopDNS ends the responder (it would also leave by itself once it sees
// no network) and waits for it to be gone.
func (m *Manager) stopDNS(ctx context.Context) error {
	pid := 0
	err := m.mutate(ctx, func(st *diskState) error {
		if len(st.Networks) > 0 {
			return nil
		}
		if pid = m.dnsPid(); pid != 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		return nil
	})
	if err != nil || pid == 0 {
		return err
	}
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil || isZombie(pid) {
			return nil
		}
	}
	if m.dnsPid() == pid {
		syscall.Kill(pid, syscall.SIGKILL)
		os.Remove(m.dnsPidfile())
		os.Remove(filepath.Join(m.runDir, "dns.ready"))
	}
	return nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}
