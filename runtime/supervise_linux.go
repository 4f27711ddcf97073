package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// watch waits for the container process and records its end; then the
// restart policy decides.
func (m *monitor) watch(sup *supervised, proc *os.Process, pid int, ns heldNS) {
	code := 255
	ran := time.Duration(0)
	if proc != nil {
		st, err := proc.Wait()
		if err == nil {
			code = ExitCode(st.Sys().(syscall.WaitStatus))
		}
	} else {
		waitPidfd(pid)
	}
	ns.letGo()
	m.exited(sup, code, ran)
}

// waitPidfd waits for a process that is not our child (adopted after a
// monitor restart); its exit status is not ours to read.
func waitPidfd(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, -1); n > 0 || (err != nil && err != unix.EINTR) {
			return
		}
	}
}

// release ends the supervision of a container that will not restart. No
// restart will use the caller's stdio: it is closed, or a caller reading
// the container's output (berth run | cat) would never see EOF while the
// monitor lives.
func (m *monitor) release(sup *supervised) {
	for _, f := range sup.stdio {
		if f != nil {
			f.Close()
		}
	}
	m.forget(sup)
	close(sup.done)
}

func (m *monitor) exited(sup *supervised, code int, _ time.Duration) {
	if sup.health != nil {
		sup.health()
	}
	m.mu.Lock()
	stopping := sup.stopping
	m.mu.Unlock()
	now := time.Now().UTC()
	// Let the log pumps drain what the process wrote last before the exit
	// is recorded (who saw it stopped reads the whole log): they end at
	// EOF when no writer is left (a leftover writer, e.g. a daemonised
	// child that escaped, gets half a second).
	drained := make(chan struct{})
	go func() { sup.pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(500 * time.Millisecond):
	}
	m.mu.Lock()
	removeAtExit := sup.removeAtExit
	m.mu.Unlock()
	if removeAtExit != nil && !stopping && removeAtExit() {
		// Deleted next by the run that waits for it: the exit goes to its
		// caller, not through a state file write it would remove at once
		// (a monitor killed meanwhile leaves the state running with a dead
		// pid, which the next one records as stopped).
		m.rt.event(sup.id, "die", "", &code)
		sup.exitCode, sup.finished, sup.exitKept = code, now, true
		sup.closeIO()
		m.release(sup)
		return
	}
	s, err := m.update(sup.id, func(s *State) {
		s.Status, s.ExitCode, s.Finished, s.Pid = StatusStopped, code, now, 0
		s.StoppedByUser = s.StoppedByUser || stopping
		if s.Health != nil {
			s.Health.Status = "unhealthy"
		}
	})
	// The exit is an event even when the state is gone already (a delete
	// that followed the stop at once).
	m.rt.event(sup.id, "die", "", &code)
	if err != nil {
		m.forget(sup)
		return
	}
	sup.closeIO()
	delay, ok := m.restartDelay(sup, s, now)
	if !ok {
		m.release(sup)
		return
	}
	close(sup.done)
	time.Sleep(delay)
	m.restart(sup)
}

// restartDelay applies the policy. The backoff doubles from 100 ms up to
// a minute, and starts over after a run of 10 s or more.
func (m *monitor) restartDelay(sup *supervised, s *State, now time.Time) (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sup.stopping || sup.deleted || s.StoppedByUser {
		return 0, false
	}
	p := s.Options.Restart
	switch p.Name {
	case "always", "unless-stopped":
	case "on-failure":
		if s.ExitCode == 0 || (p.MaxRetries > 0 && s.Restarts >= p.MaxRetries) {
			return 0, false
		}
	default:
		return 0, false
	}
	if !s.Started.IsZero() && now.Sub(s.Started) >= 10*time.Second {
		sup.backoff = 0
	}
	if sup.backoff == 0 {
		sup.backoff = 100 * time.Millisecond
	} else if sup.backoff *= 2; sup.backoff > time.Minute {
		sup.backoff = time.Minute
	}
	return sup.backoff, true
}

func (m *monitor) restart(sup *supervised) {
	m.mu.Lock()
	if sup.stopping || sup.deleted {
		m.mu.Unlock()
		m.forget(sup)
		return
	}
	sup.done = make(chan struct{})
	m.mu.Unlock()
	s, err := m.rt.readState(sup.id)
	if err != nil {
		m.forget(sup)
		return
	}
	stdio := sup.stdio
	if len(stdio) == 0 {
		if stdio, err = sup.openLogs(m.rt, s); err != nil {
			m.failRestart(sup, s, err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := m.rt.launch(ctx, s, sup.spec, stdio, "", nil)
	if len(sup.stdio) == 0 {
		for _, f := range stdio {
			if f != nil {
				f.Close()
			}
		}
	}
	if err != nil {
		m.failRestart(sup, s, err)
		return
	}
	pid, pidStart := s.Pid, s.PidStart
	s, err = m.update(s.ID, func(s *State) {
		s.Status, s.Started, s.Restarts, s.Pid, s.PidStart = StatusRunning, time.Now().UTC(), s.Restarts+1, pid, pidStart
	})
	if err != nil {
		c.kill()
		m.failRestart(sup, &State{ID: sup.id}, err)
		return
	}
	m.rt.event(sup.id, "restart", "", nil)
	m.startHealth(sup, s)
	go m.watch(sup, c.proc, s.Pid, holdMountNS(s.Pid))
}

func (m *monitor) failRestart(sup *supervised, s *State, err error) {
	fmt.Fprintf(os.Stderr, "berth monitor: restart %s: %v\n", s.ID, err)
	sup.closeIO()
	close(sup.done)
	m.forget(sup)
}

func (m *monitor) forget(sup *supervised) {
	m.mu.Lock()
	if m.live[sup.id] == sup {
		delete(m.live, sup.id)
	}
	m.lastBusy = time.Now()
	m.mu.Unlock()
}

func (m *monitor) get(id string) *supervised {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live[id]
}

func (m *monitor) start(ctx context.Context, id string) (*State, error) {
	s, err := m.rt.State(id)
	if err != nil {
		return nil, err
	}
	if s.Status != StatusCreated {
		return nil, fmt.Errorf("%w: %s is %s, not created", ErrState, id, s.Status)
	}
	sup := m.get(id)
	var spec *specs.Spec
	if sup != nil {
		spec = sup.spec // what create wrote to config.json
	} else if spec, err = LoadSpec(m.rt.dir(id)); err != nil {
		return nil, err
	}
	// Prestart hooks belong to start (runtime-spec 1.0 lifecycle); one
	// that fails stops the container, which delete then removes.
	h := hooksOf(spec)
	if err := runHooks(ctx, append(append([]specs.Hook(nil), h.Prestart...), h.StartContainer...), s.OCI()); err != nil {
		if derr := m.delete(ctx, id, true); derr != nil {
			err = fmt.Errorf("%w (and delete: %v)", err, derr)
		}
		return nil, err
	}
	fifo, err := releaseStart(ctx, filepath.Join(m.rt.dir(id), "exec.fifo"), s.Pid, s.PidStart)
	if err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(m.rt.dir(id), "exec.fifo"))
	// The state is written while the child execs; start returns once both
	// are done, so "started" still means the container's process runs.
	execed := make(chan error, 1)
	go func() { execed <- awaitExec(ctx, fifo) }()
	// The process may already have exited and been recorded: keep that.
	started := time.Now().UTC()
	s, err = m.update(id, func(s *State) {
		s.Started = started
		if s.Status == StatusCreated {
			s.Status = StatusRunning
		}
	})
	if xerr := <-execed; err == nil {
		err = xerr
	}
	if err != nil {
		return nil, err
	}
	if sup != nil {
		// Only now that the container runs: a spare started during the
		// create would compete for the CPU with its last steps.
		m.startHealth(sup, s)
	}
	for _, h := range hooksOf(spec).Poststart {
		if err := runHook(ctx, h, mustJSON(s.OCI())); err != nil {
			warnHook("poststart", id, err)
		}
	}
	return s, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func isStopSignal(sig syscall.Signal) bool {
	return sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGQUIT
}

func (m *monitor) kill(id string, sig syscall.Signal, all bool) error {
	s, err := m.rt.State(id)
	if err != nil {
		return err
	}
	if s.Status != StatusRunning && s.Status != StatusCreated && s.Status != StatusPaused {
		return fmt.Errorf("%w: %s is not running", ErrState, id)
	}
	if isStopSignal(sig) {
		m.markStopping(s)
	}
	if all {
		if cg, err := openCgroup(s.Cgroup); err == nil {
			pids, _ := cg.pids()
			for _, p := range pids {
				syscall.Kill(p, sig)
			}
		}
	}
	if err := syscall.Kill(s.Pid, sig); err != nil && err != syscall.ESRCH {
		return err
	}
	if s.Status == StatusPaused && sig == syscall.SIGKILL {
		m.pause(id, false)
	}
	return nil
}

func (m *monitor) markStopping(s *State) {
	m.mu.Lock()
	if sup := m.live[s.ID]; sup != nil {
		sup.stopping = true
	}
	m.mu.Unlock()
	if !s.StoppedByUser {
		s.StoppedByUser = true
		m.update(s.ID, func(cur *State) { cur.StoppedByUser = true })
	}
}

// stop sends sig (SIGTERM by default), waits up to timeout, then SIGKILL.
func (m *monitor) stop(ctx context.Context, id string, sig syscall.Signal, timeout time.Duration) error {
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	s, err := m.rt.State(id)
	if err != nil {
		return err
	}
	if s.Status == StatusStopped {
		return nil
	}
	m.markStopping(s)
	alone, done := warm.stopping()
	defer done()
	if alone {
		m.anticipate(id)
	}
	if s.Status == StatusPaused {
		m.pause(id, false)
	}
	syscall.Kill(s.Pid, sig)
	if m.waitGone(ctx, id, s, timeout) {
		return nil
	}
	syscall.Kill(s.Pid, syscall.SIGKILL)
	if !m.waitGone(ctx, id, s, 10*time.Second) {
		return fmt.Errorf("%s did not die after SIGKILL", id)
	}
	return nil
}

// anticipate starts a spare (warm_linux.go) for the plan of a container
// being stopped alone (a stop is how a recreate begins; the stops of a
// down come many at once), or of one a client names (Runtime.Anticipate:
// `up` of an edited file asks while the file loads). Without one the
// create of a lone recreate (no burst going on) started its init cold,
// and one started at the stop was often still starting when the create
// came 10 to 15 ms later. A stop or a request that no create follows
// (down, stop, an edit that changes nothing) costs a spare start at nice
// 19, which expires after warmTTL.
func (m *monitor) anticipate(id string) {
	sup := m.get(id)
	if sup == nil || sup.spec == nil {
		return
	}
	if plan, err := planNamespaces(sup.spec); err == nil {
		warm.anticipate(plan)
	}
}

func (m *monitor) waitGone(ctx context.Context, id string, s *State, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	if sup := m.get(id); sup != nil {
		m.mu.Lock()
		done := sup.done
		m.mu.Unlock()
		select {
		case <-done:
			return true
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	for pidAlive(s.Pid, s.PidStart) {
		select {
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

func (m *monitor) delete(ctx context.Context, id string, force bool) error {
	return m.deleteKnown(ctx, id, force, nil)
}

// deleteKnown is delete with the container's spec when the caller has it
// (an attached run whose container exited is no longer supervised, and
// reading config.json back costs its decode).
func (m *monitor) deleteKnown(ctx context.Context, id string, force bool, spec *specs.Spec) error {
	s, err := m.rt.State(id)
	if err != nil {
		return err
	}
	if s.Status != StatusStopped {
		if !force {
			return fmt.Errorf("%w: %s is %s; stop it first or force", ErrState, id, s.Status)
		}
		if err := m.stop(ctx, id, syscall.SIGKILL, 10*time.Second); err != nil {
			return err
		}
	}
	if sup := m.get(id); sup != nil {
		m.mu.Lock()
		sup.deleted = true
		done := sup.done
		m.mu.Unlock()
		<-done
		m.forget(sup)
		spec = sup.spec
	} else if spec == nil {
		spec, _ = LoadSpec(m.rt.dir(id))
	}
	return m.removeStopped(ctx, s, spec)
}

// removeStopped runs a stopped container's poststop hooks and removes
// what it left.
func (m *monitor) removeStopped(ctx context.Context, s *State, spec *specs.Spec) error {
	if spec != nil {
		for _, h := range hooksOf(spec).Poststop {
			if err := runHook(ctx, h, mustJSON(s.OCI())); err != nil {
				warnHook("poststop", s.ID, err)
			}
		}
	}
	return m.rt.cleanupContainer(s)
}

func (m *monitor) pause(id string, on bool) error {
	s, err := m.rt.State(id)
	if err != nil {
		return err
	}
	want := StatusRunning
	if !on {
		want = StatusPaused
	}
	if s.Status != want {
		return fmt.Errorf("%w: %s is %s", ErrState, id, s.Status)
	}
	cg, err := openCgroup(s.Cgroup)
	if err != nil {
		return err
	}
	if err := cg.freeze(on); err != nil {
		return err
	}
	_, err = m.update(id, func(s *State) {
		if s.Status == StatusStopped {
			return
		}
		if on {
			s.Status = StatusPaused
		} else {
			s.Status = StatusRunning
		}
	})
	return err
}

// update is the one read-modify-write of a state file in the monitor.
func (m *monitor) update(id string, fn func(*State)) (*State, error) {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	s, err := m.rt.readState(id)
	if err != nil {
		return nil, err
	}
	fn(s)
	return s, m.rt.writeState(s)
}

// adopt takes over the containers a previous monitor left: live ones are
// watched through a pidfd (their exit status is lost: recorded as 255),
// dead ones are marked stopped and, per their policy, restarted.
func (m *monitor) adopt() {
	// A directory without a state file is a create the previous monitor
	// died in before recording anything: nothing runs for it.
	if ents, err := os.ReadDir(m.rt.root); err == nil {
		for _, e := range ents {
			if !e.IsDir() || checkID(e.Name()) != nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(m.rt.dir(e.Name()), "state.json")); os.IsNotExist(err) {
				os.RemoveAll(m.rt.dir(e.Name()))
			}
		}
	}
	states, err := m.rt.List()
	if err != nil {
		return
	}
	for _, st := range states {
		raw, err := m.rt.readState(st.ID)
		if err != nil || raw.Status == StatusStopped {
			continue
		}
		spec, err := LoadSpec(m.rt.dir(st.ID))
		if err != nil {
			continue
		}
		sup := &supervised{id: st.ID, spec: spec, done: make(chan struct{})}
		if raw.Status == StatusCreating {
			// Killed mid-create: never half-made.
			if pidAlive(raw.Pid, raw.PidStart) {
				syscall.Kill(raw.Pid, syscall.SIGKILL)
			}
			m.rt.cleanupContainer(raw)
			continue
		}
		m.mu.Lock()
		m.live[st.ID] = sup
		m.mu.Unlock()
		if st.Status == StatusStopped {
			go m.exited(sup, 255, 0)
			continue
		}
		sup.reopenLogs(m.rt, raw)
		m.startHealth(sup, raw)
		go m.watch(sup, nil, raw.Pid, -1)
	}
}
