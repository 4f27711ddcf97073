package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// call sends one request to the root's monitor, starting the monitor when
// none answers. A connection that a shutting-down monitor closed before
// reading is retried: that request was never acted upon.
func (r *Runtime) call(ctx context.Context, req *request, fds []*os.File) (*response, error) {
	resp, conn, _, err := r.callKeep(ctx, req, fds, false)
	if conn != nil {
		conn.Close()
	}
	return resp, err
}

// callKeep is call that, with keep, leaves the connection open after the
// first response (for the ops that answer more than once) and returns it
// with its reader.
func (r *Runtime) callKeep(ctx context.Context, req *request, fds []*os.File, keep bool) (*response, *net.UnixConn, *bufio.Reader, error) {
	sock := filepath.Join(r.root, "monitor.sock")
	req.NFds = len(fds)
	b, err := json.Marshal(req)
	if err != nil {
		return nil, nil, nil, err
	}
	b = append(b, '\n')
	spawned := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, sent, conn, rd, err := r.roundTrip(sock, b, fds, keep)
		if err == nil {
			return resp, conn, rd, nil
		}
		if sent {
			return nil, nil, nil, fmt.Errorf("monitor: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, nil, nil, fmt.Errorf("monitor did not answer: %w", err)
		}
		if !spawned {
			if err := r.spawnMonitor(); err != nil {
				return nil, nil, nil, err
			}
			spawned = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// roundTrip reports sent=true once the monitor read the request (it
// answered something, even EOF after reading): retrying is then unsafe.
func (r *Runtime) roundTrip(sock string, b []byte, fds []*os.File, keep bool) (_ *response, _ bool, _ *net.UnixConn, _ *bufio.Reader, err error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, false, nil, nil, err
	}
	defer func() {
		if err != nil || !keep {
			conn.Close()
		}
	}()
	var oob []byte
	if len(fds) > 0 {
		ints := make([]int, len(fds))
		for i, f := range fds {
			ints[i] = int(f.Fd())
		}
		oob = unix.UnixRights(ints...)
	}
	if _, _, err := conn.WriteMsgUnix(b, oob, nil); err != nil {
		return nil, false, nil, nil, err
	}
	rd := bufio.NewReaderSize(conn, 64<<10)
	line, err := rd.ReadBytes('\n')
	if err != nil {
		// Closed unread by a monitor on its way out, or it crashed mid-call;
		// both look alike here, and only the first is safe to retry. The
		// monitor closes unread connections before it unlinks the socket,
		// so a vanished socket says it was the first.
		if _, serr := os.Stat(sock); serr != nil {
			return nil, false, nil, nil, err
		}
		return nil, len(line) > 0, nil, nil, err
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, true, nil, nil, err
	}
	return &resp, true, conn, rd, nil
}

func (r *Runtime) spawnMonitor() error {
	logf, err := os.OpenFile(filepath.Join(r.root, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	env := append(os.Environ(), envChild+"="+childMon, envMonitor+"="+r.root)
	p, err := os.StartProcess("/proc/self/exe", []string{"berth-monitor", r.root}, &os.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []*os.File{null, null, logf},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return fmt.Errorf("start monitor: %w", err)
	}
	// Reap it if this process outlives it (tests, watch loops).
	go p.Wait()
	return nil
}

func respErr(resp *response) error {
	if resp.Error == "" {
		return nil
	}
	var kind error
	switch resp.Kind {
	case "notfound":
		kind = ErrNotFound
	case "exists":
		kind = ErrExists
	case "state":
		kind = ErrState
	case "invalid":
		kind = ErrInvalid
	default:
		return errors.New(resp.Error)
	}
	return &kindError{msg: resp.Error, kind: kind}
}

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func (r *Runtime) do(ctx context.Context, req *request, fds []*os.File) (*State, error) {
	resp, err := r.call(ctx, req, fds)
	if err != nil {
		return nil, err
	}
	return resp.State, respErr(resp)
}

// Create makes a container from a spec (o.Spec, or o.Bundle/config.json)
// and leaves it "created": its process waits just before exec for Start.
func (r *Runtime) Create(ctx context.Context, id string, o CreateOptions) (*State, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if o.Bundle != "" {
		abs, err := filepath.Abs(o.Bundle)
		if err != nil {
			return nil, err
		}
		o.Bundle = abs
	}
	req, fds := createRequest("create", id, &o)
	return r.do(ctx, req, fds)
}

func createRequest(op, id string, o *CreateOptions) (*request, []*os.File) {
	req := &request{Op: op, ID: id, Options: o, Spec: o.Spec}
	fds := o.Stdio
	if o.ConsoleSocket != nil {
		fds = append(append([]*os.File(nil), fds...), o.ConsoleSocket)
		req.Console = true
	}
	return req, fds
}

// Start lets a created container exec its process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	_, err := r.do(ctx, &request{Op: "start", ID: id}, nil)
	return err
}

// Run is Create then Start, in one call to the monitor (a container whose
// start fails is deleted).
func (r *Runtime) Run(ctx context.Context, id string, o CreateOptions) (*State, error) {
	s, _, err := r.runOp(ctx, id, &o, false, false)
	return s, err
}

// RunWait is Run that then waits for the container to stop, and deletes
// it when remove is set; started (if set) is called once it runs. One
// connection to the monitor serves it all (`berth runtime run`'s path):
// the monitor answers once started and once stopped. When ctx ends, or the
// caller goes, before the container stops, the container is left as it
// is (running, and kept once stopped).
func (r *Runtime) RunWait(ctx context.Context, id string, o CreateOptions, remove bool, started func(*State)) (*State, error) {
	s, conn, err := r.runOp(ctx, id, &o, true, remove)
	if err != nil {
		return nil, err
	}
	defer conn.conn.Close()
	if started != nil {
		started(s)
	}
	stop := context.AfterFunc(ctx, func() { conn.conn.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := conn.rd.ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("monitor: %w", err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, err
	}
	return resp.State, respErr(&resp)
}

type openCall struct {
	conn *net.UnixConn
	rd   *bufio.Reader
}

func (r *Runtime) runOp(ctx context.Context, id string, o *CreateOptions, wait, remove bool) (*State, openCall, error) {
	if err := checkID(id); err != nil {
		return nil, openCall{}, err
	}
	if o.Bundle != "" {
		abs, err := filepath.Abs(o.Bundle)
		if err != nil {
			return nil, openCall{}, err
		}
		o.Bundle = abs
	}
	req, fds := createRequest("run", id, o)
	req.Wait, req.Remove = wait, remove
	resp, conn, rd, err := r.callKeep(ctx, req, fds, wait)
	if err != nil {
		return nil, openCall{}, err
	}
	if err := respErr(resp); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, openCall{}, err
	}
	return resp.State, openCall{conn, rd}, nil
}

// Kill sends sig to the container's init (all: to every process of it).
// SIGKILL, SIGTERM, SIGINT and SIGQUIT count as a user stop: no restart.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	_, err := r.do(ctx, &request{Op: "kill", ID: id, Signal: int(sig), All: all}, nil)
	return err
}

// Stop sends sig (0: SIGTERM), waits up to timeout, then SIGKILLs.
func (r *Runtime) Stop(ctx context.Context, id string, sig syscall.Signal, timeout time.Duration) error {
	_, err := r.do(ctx, &request{Op: "stop", ID: id, Signal: int(sig), Timeout: timeout}, nil)
	return err
}

// Delete removes a stopped (or created) container; force kills it first.
// Deleting a missing container returns an ErrNotFound error.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	_, err := r.do(ctx, &request{Op: "delete", ID: id, Force: force}, nil)
	return err
}

// Pause freezes every process of the container.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	_, err := r.do(ctx, &request{Op: "pause", ID: id}, nil)
	return err
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	_, err := r.do(ctx, &request{Op: "resume", ID: id}, nil)
	return err
}

// Wait blocks until the container has stopped and returns its state.
func (r *Runtime) Wait(ctx context.Context, id string) (*State, error) {
	// Short jobs are seen ending within milliseconds; a long wait backs off
	// to a few reads a second instead of hundreds.
	poll := 2 * time.Millisecond
	for {
		s, err := r.State(id)
		if err != nil {
			return nil, err
		}
		if s.Status == StatusStopped {
			// The monitor records the exit right after the process ends;
			// on a loaded machine that can take a while, and an exit code
			// read before it is a made-up 0.
			for deadline := time.Now().Add(10 * time.Second); s.Finished.IsZero() && time.Now().Before(deadline) && ctx.Err() == nil; {
				time.Sleep(2 * time.Millisecond)
				if s2, err := r.readState(id); err == nil {
					s2.Status = StatusStopped
					s = s2
				}
			}
			if s.Finished.IsZero() {
				s.ExitCode = 255 // never recorded: lost, as an adopted container's
			}
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(poll*3/2, 200*time.Millisecond)
	}
}

// Anticipate asks the root's monitor, when one runs, to start spare inits
// (warm_linux.go) for the namespaces of container id, as a stop of it
// does: a create of the same kind is expected soon. It starts no monitor.
func (r *Runtime) Anticipate(ctx context.Context, id string) error {
	if !r.monitorAlive() {
		return nil
	}
	_, err := r.do(ctx, &request{Op: "anticipate", ID: id}, nil)
	return err
}

// Ping makes sure the root's monitor runs: when none answers, one is
// started, and it adopts the live containers (health checks, restart
// policies and exit statuses resume). Waiters call it so that a killed
// monitor does not leave them polling a state nobody updates.
func (r *Runtime) Ping(ctx context.Context) error {
	_, err := r.do(ctx, &request{Op: "ping"}, nil)
	return err
}
