package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// request is one call to the monitor; stdio fds travel with it as
// SCM_RIGHTS. One request per connection, one response.
type request struct {
	Op      string         `json:"op"`
	ID      string         `json:"id"`
	Options *CreateOptions `json:"options,omitempty"`
	Spec    *specs.Spec    `json:"spec,omitempty"`
	NFds    int            `json:"nfds,omitempty"`
	Console bool           `json:"console,omitempty"` // the last fd is a console socket
	Signal  int            `json:"signal,omitempty"`
	All     bool           `json:"all,omitempty"`
	Timeout time.Duration  `json:"timeout,omitempty"`
	Force   bool           `json:"force,omitempty"`
	// run: Wait answers a second time once the container stopped (and
	// Remove deletes it then, unless the caller went away).
	Wait   bool `json:"wait,omitempty"`
	Remove bool `json:"remove,omitempty"`
	// NoTerminal: the caller cannot relay a terminal (the C path of
	// `berth runtime run`): a terminal: true spec is refused, kind
	// "terminal", before anything is made.
	NoTerminal bool `json:"noTerminal,omitempty"`
}

type response struct {
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"` // notfound, exists, state, invalid
	State *State `json:"state,omitempty"`
	// RunExit is the exit status in a run-and-wait's last answer.
	RunExit *int `json:"runExit,omitempty"`
}

// errTerminal refuses a terminal to a NoTerminal caller.
var errTerminal = errors.New("the process has a terminal: the caller cannot relay it")

// supervised is a container with a live process the monitor watches.
type supervised struct {
	id       string
	spec     *specs.Spec
	stdio    []*os.File // caller's stdio, kept for restarts
	logs     *logWriter
	pipes    []*os.File // read ends of the log FIFOs
	done     chan struct{}
	stopping bool // stopped by a user: no restart
	deleted  bool
	backoff  time.Duration
	health   context.CancelFunc
	pumps    sync.WaitGroup // log pumps, done at EOF once the process is gone
	// removeAtExit (an attached run --rm) says, when the process exits,
	// whether the container is deleted at once; then its exit is not
	// written to the state but kept here (exitCode, finished, exitKept)
	// for the caller.
	removeAtExit func() bool
	exitCode     int
	finished     time.Time
	exitKept     bool
}

type monitor struct {
	rt       *Runtime
	mu       sync.Mutex
	stateMu  sync.Mutex // read-modify-write of state files
	live     map[string]*supervised
	busy     int
	closing  bool
	lastBusy time.Time
	ln       *net.UnixListener
	// lock is the flock that makes this the one monitor of the root. It
	// must stay referenced: were the *os.File collected, its finalizer
	// would close the fd and drop the lock, and a second monitor would
	// take over the socket of this live one.
	lock *os.File
}

const monitorIdle = 2 * time.Second

// monitorAlive says whether a monitor holds the root's monitor.lock (it
// keeps it for its whole life).
func (r *Runtime) monitorAlive() bool {
	f, err := os.Open(filepath.Join(r.root, "monitor.lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil
}

func monitorMain(root string) {
	rt, err := New(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth monitor:", err)
		os.Exit(1)
	}
	lock, err := os.OpenFile(filepath.Join(rt.root, "monitor.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		os.Exit(1)
	}
	// Wait for a monitor that is shutting down to be gone; a live one keeps
	// the lock for good, and then this one is not needed.
	deadline := time.Now().Add(3 * time.Second)
	for unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			os.Exit(0)
		}
		time.Sleep(5 * time.Millisecond)
	}
	sock := filepath.Join(rt.root, "monitor.sock")
	os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth monitor:", err)
		os.Exit(1)
	}
	m := &monitor{rt: rt, live: map[string]*supervised{}, lastBusy: time.Now(), ln: ln, lock: lock}
	warm = &warmPool{}
	cleanStaging()
	m.adopt()
	go m.idleLoop(sock)
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			m.mu.Lock()
			closing := m.closing
			m.mu.Unlock()
			if closing {
				select {} // idleLoop exits the process
			}
			continue
		}
		m.mu.Lock()
		if m.closing {
			m.mu.Unlock()
			conn.Close()
			continue
		}
		m.busy++
		m.mu.Unlock()
		go m.serve(conn)
	}
}

func (m *monitor) idleLoop(sock string) {
	for range time.Tick(200 * time.Millisecond) {
		m.mu.Lock()
		if m.busy == 0 && len(m.live) == 0 && time.Since(m.lastBusy) > monitorIdle {
			m.closing = true
			os.Remove(sock)
			m.ln.Close()
			m.mu.Unlock()
			os.Exit(0)
		}
		m.mu.Unlock()
	}
}

func (m *monitor) serve(conn *net.UnixConn) {
	defer func() {
		conn.Close()
		m.mu.Lock()
		m.busy--
		m.lastBusy = time.Now()
		m.mu.Unlock()
	}()
	req, fds, err := readRequest(conn)
	if err == nil && req.Op == "run" && req.Wait {
		m.runWait(conn, req, fds)
		return
	}
	var resp response
	if err == nil {
		resp = m.handle(req, fds)
	} else {
		resp = response{Error: err.Error()}
	}
	b, _ := json.Marshal(resp)
	conn.Write(append(b, '\n'))
}

func readRequest(conn *net.UnixConn) (*request, []*os.File, error) {
	// Requests are a line; a longer one comes in more reads (a stream
	// socket). A 1 MiB buffer here was zeroed memory on every request.
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(8*4))
	var data []byte
	var fds []*os.File
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, msg := range msgs {
				rights, _ := unix.ParseUnixRights(&msg)
				for _, fd := range rights {
					unix.CloseOnExec(fd)
					fds = append(fds, os.NewFile(uintptr(fd), "stdio"))
				}
			}
		}
		data = append(data, buf[:n]...)
		if len(data) > 0 && data[len(data)-1] == '\n' {
			break
		}
		if err != nil || n == 0 {
			return nil, fds, fmt.Errorf("read request: %v", err)
		}
	}
	var req request
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fds, err
	}
	return &req, fds, nil
}

func errResponse(err error) response {
	r := response{Error: err.Error()}
	switch {
	case errors.Is(err, ErrNotFound):
		r.Kind = "notfound"
	case errors.Is(err, ErrExists):
		r.Kind = "exists"
	case errors.Is(err, ErrState):
		r.Kind = "state"
	case errors.Is(err, ErrInvalid):
		r.Kind = "invalid"
	case errors.Is(err, errTerminal):
		r.Kind = "terminal"
	}
	return r
}

func (m *monitor) handle(req *request, fds []*os.File) response {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var s *State
	var err error
	switch req.Op {
	case "ping":
		return response{}
	case "anticipate":
		m.anticipate(req.ID)
		return response{}
	case "create":
		s, err = m.create(ctx, req, fds)
	case "start":
		s, err = m.start(ctx, req.ID)
	case "run":
		s, err = m.run(ctx, req, fds)
	case "kill":
		err = m.kill(req.ID, syscall.Signal(req.Signal), req.All)
	case "stop":
		err = m.stop(ctx, req.ID, syscall.Signal(req.Signal), req.Timeout)
	case "delete":
		err = m.delete(ctx, req.ID, req.Force)
	case "pause":
		err = m.pause(req.ID, true)
	case "resume":
		err = m.pause(req.ID, false)
	default:
		err = fmt.Errorf("%w: unknown op %q", ErrInvalid, req.Op)
	}
	if err != nil {
		return errResponse(err)
	}
	return response{State: s}
}

func (m *monitor) create(ctx context.Context, req *request, fds []*os.File) (s *State, err error) {
	// The caller's stdio is the container's when it is made; otherwise it
	// must not stay open here (a caller reading the pipe it passed would
	// wait for EOF as long as this monitor lives).
	defer func() {
		if err != nil {
			for _, f := range fds {
				f.Close()
			}
		}
	}()
	o := req.Options
	if o == nil {
		o = &CreateOptions{}
	}
	if err := checkID(req.ID); err != nil {
		return nil, err
	}
	spec := req.Spec
	if spec == nil {
		var err error
		if spec, err = LoadSpec(o.Bundle); err != nil {
			return nil, err
		}
	}
	if err := validateSpec(spec); err != nil {
		return nil, err
	}
	if req.NoTerminal && spec.Process.Terminal {
		return nil, errTerminal
	}
	dir := m.rt.dir(req.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if os.IsExist(err) {
			return nil, fmt.Errorf("%s: %w", req.ID, ErrExists)
		}
		return nil, err
	}
	var console *os.File
	if req.Console && len(fds) > 0 {
		console, fds = fds[len(fds)-1], fds[:len(fds)-1]
		defer console.Close() // the container's init has its own copy
	}
	s, sup, err := m.createIn(ctx, req.ID, spec, o, fds, console)
	if err != nil {
		if s != nil {
			m.rt.cleanupContainer(s)
		} else {
			os.RemoveAll(dir)
		}
		if sup != nil {
			sup.closeIO()
		}
		return nil, err
	}
	return s, nil
}

func (m *monitor) createIn(ctx context.Context, id string, spec *specs.Spec, o *CreateOptions, fds []*os.File, console *os.File) (*State, *supervised, error) {
	dir := m.rt.dir(id)
	s := &State{ID: id, Bundle: o.Bundle, Status: StatusCreating, Created: time.Now().UTC(), Options: *o, Annotations: spec.Annotations}
	rootfs, err := m.rt.rootfsOf(id, spec, o)
	if err != nil {
		return nil, nil, err
	}
	s.Rootfs = rootfs
	if spec.Process != nil {
		s.Args = spec.Process.Args
	}
	b, _ := json.Marshal(spec)
	if err := writeFileAtomic(filepath.Join(dir, "config.json"), b); err != nil {
		return nil, nil, err
	}
	if err := m.rt.writeState(s); err != nil {
		return nil, nil, err
	}
	fifo := filepath.Join(dir, "exec.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return s, nil, err
	}
	sup := &supervised{id: id, spec: spec, stdio: fds, done: make(chan struct{})}
	stdio := fds
	if len(fds) == 0 {
		if stdio, err = sup.openLogs(m.rt, s); err != nil {
			return s, sup, err
		}
	}
	c, err := m.rt.launch(ctx, s, spec, stdio, fifo, console)
	if len(fds) == 0 {
		for _, f := range stdio {
			f.Close() // the container holds its own copies
		}
	}
	if err != nil {
		return s, sup, err
	}
	s.Status = StatusCreated
	h := hooksOf(spec)
	pre := append(append([]specs.Hook(nil), h.CreateRuntime...), h.CreateContainer...)
	if err := runHooks(ctx, pre, s.OCI()); err != nil {
		c.kill()
		return s, sup, err
	}
	if err := m.rt.writeState(s); err != nil {
		c.kill()
		return s, sup, err
	}
	if err := writePidFile(o.PidFile, s.Pid); err != nil {
		c.kill()
		return s, sup, err
	}
	m.mu.Lock()
	m.live[id] = sup
	m.mu.Unlock()
	go m.watch(sup, c.proc, s.Pid, holdMountNS(s.Pid))
	return s, sup, nil
}

// openLogs makes the container's stdout and stderr two FIFOs. The
// container gets them opened O_RDWR, so it always has a reader: when the
// monitor dies, writes block once the pipe is full instead of raising
// SIGPIPE, and a new monitor reopens the FIFOs and drains them.
func (sup *supervised) openLogs(rt *Runtime, s *State) ([]*os.File, error) {
	lw, err := openLogWriter(rt.logPath(s), s.Options.LogMaxSize, s.Options.LogMaxFiles)
	if err != nil {
		return nil, err
	}
	sup.logs = lw
	stdio := []*os.File{nil}
	for _, name := range []string{"stdout", "stderr"} {
		p := filepath.Join(rt.dir(s.ID), name+".fifo")
		if err := unix.Mkfifo(p, 0o600); err != nil && !os.IsExist(err) {
			return nil, err
		}
		r, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		w, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			r.Close()
			return nil, err
		}
		sup.pipes = append(sup.pipes, r)
		stdio = append(stdio, w)
		sup.pumps.Add(1)
		go func() { defer sup.pumps.Done(); lw.pump(name, r) }()
	}
	return stdio, nil
}

// reopenLogs is openLogs for a monitor that adopts a running container.
func (sup *supervised) reopenLogs(rt *Runtime, s *State) {
	lw, err := openLogWriter(rt.logPath(s), s.Options.LogMaxSize, s.Options.LogMaxFiles)
	if err != nil {
		return
	}
	sup.logs = lw
	for _, name := range []string{"stdout", "stderr"} {
		r, err := os.OpenFile(filepath.Join(rt.dir(s.ID), name+".fifo"), os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		sup.pipes = append(sup.pipes, r)
		sup.pumps.Add(1)
		go func() { defer sup.pumps.Done(); lw.pump(name, r) }()
	}
}

func (sup *supervised) closeIO() {
	for _, p := range sup.pipes {
		p.Close()
	}
	sup.pipes = nil
	if sup.logs != nil {
		sup.logs.close()
	}
}

// run is create then start; a container whose start fails is deleted.
func (m *monitor) run(ctx context.Context, req *request, fds []*os.File) (*State, error) {
	s, _, err := m.runThen(ctx, req, fds, nil)
	return s, err
}

// runThen is run with removeAtExit set on the container before it starts;
// it also returns the container's supervision, taken before the start (a
// container that exits at once is no longer supervised when run returns).
func (m *monitor) runThen(ctx context.Context, req *request, fds []*os.File, removeAtExit func() bool) (*State, *supervised, error) {
	if _, err := m.create(ctx, req, fds); err != nil {
		return nil, nil, err
	}
	sup := m.get(req.ID)
	if removeAtExit != nil && sup != nil {
		m.mu.Lock()
		sup.removeAtExit = removeAtExit
		m.mu.Unlock()
	}
	s, err := m.start(ctx, req.ID)
	if err != nil {
		m.delete(ctx, req.ID, true)
		return nil, nil, err
	}
	return s, sup, nil
}

// runWait serves a run with Wait: one answer once the container runs,
// one once it stopped (deleted first with Remove, unless the caller hung
// up: then it is kept for whoever looks next).
func (m *monitor) runWait(conn *net.UnixConn, req *request, fds []*os.File) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var removeAtExit func() bool
	if req.Remove && (req.Options == nil || req.Options.Restart.Name == "" || req.Options.Restart.Name == "no") {
		removeAtExit = func() bool { return !hungUp(conn) }
	}
	s, sup, err := m.runThen(ctx, req, fds, removeAtExit)
	cancel()
	resp := response{State: s}
	if err != nil {
		resp = errResponse(err)
	}
	b, _ := json.Marshal(resp)
	if _, werr := conn.Write(append(b, '\n')); werr != nil || err != nil {
		return
	}
	var spec *specs.Spec
	if sup != nil {
		m.mu.Lock()
		done := sup.done
		m.mu.Unlock()
		<-done
		spec = sup.spec
		if sup.exitKept {
			m.runRemoved(conn, req.ID, spec, sup)
			return
		}
	}
	s, err = m.rt.State(req.ID)
	if err == nil && req.Remove && !hungUp(conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err = m.deleteKnown(ctx, req.ID, true, spec)
		cancel()
	}
	resp = response{State: s}
	if err != nil {
		resp = errResponse(err)
	} else {
		resp.RunExit = &s.ExitCode
	}
	b, _ = json.Marshal(resp)
	conn.Write(append(b, '\n'))
}

// hungUp says whether the caller closed its end (it sends nothing more):
// a peek that does not wait. (A read with a deadline already past never
// reached the socket: Go answers it with ErrDeadlineExceeded first, so a
// caller that went was never seen, and its run --rm was deleted anyway.)
func hungUp(conn *net.UnixConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || errors.Is(err, unix.ECONNRESET)
		return true
	})
	return gone
}

// runRemoved ends an attached run --rm whose exit was kept in memory
// (exited): the container is deleted and the caller gets the exit code.
func (m *monitor) runRemoved(conn *net.UnixConn, id string, spec *specs.Spec, sup *supervised) {
	s, err := m.rt.readState(id)
	if err == nil {
		s.Status, s.ExitCode, s.Finished, s.Pid = StatusStopped, sup.exitCode, sup.finished, 0
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err = m.removeStopped(ctx, s, spec)
		cancel()
	}
	resp := response{State: s}
	if err != nil {
		resp = errResponse(err)
	} else {
		resp.RunExit = &s.ExitCode
	}
	b, _ := json.Marshal(resp)
	conn.Write(append(b, '\n'))
}
