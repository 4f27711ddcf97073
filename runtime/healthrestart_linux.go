package runtime

import (
	"fmt"
	"os"
	"syscall"
)

// restartUnhealthy kills a container whose healthcheck has just turned
// unhealthy, when its restart policy would restart a crash: the exit then
// goes through the same path as a crash (policy, retries, backoff). The
// kill is not a user stop, so the policy applies; the reason is logged.
func (m *monitor) restartUnhealthy(id string) {
	s, err := m.rt.State(id)
	if err != nil || s.Status != StatusRunning || s.Options.NoHealthRestart {
		return
	}
	switch s.Options.Restart.Name {
	case "always", "unless-stopped", "on-failure":
	default:
		return
	}
	fmt.Fprintf(os.Stderr, "berth monitor: %s turned unhealthy: restarting it (restart: %s)\n", id, s.Options.Restart.Name)
	m.rt.event(id, "kill", "unhealthy: restarting (restart: "+s.Options.Restart.Name+")", nil)
	if cg, err := openCgroup(s.Cgroup); err == nil {
		if pids, err := cg.pids(); err == nil {
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	}
	syscall.Kill(s.Pid, syscall.SIGKILL)
}
