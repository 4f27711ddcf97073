// Package runtime turns an OCI runtime-spec bundle into an isolated,
// supervised container: namespaces, pivot_root, mounts, cgroups (v1 and v2),
// capabilities, seccomp, rlimits; a monitor process that parents the
// containers of one state root, records exit statuses, writes logs, restarts
// and health-checks them; exec into running containers.
//
// Process model. One monitor per state root (not per container): it is the
// parent of every container process of that root, is spawned on demand by the
// first Create (a re-exec of the current binary), serves requests over
// <root>/monitor.sock, keeps every fact on disk (<root>/<id>/state.json), and
// exits once it supervises nothing. A single Go process costs ~8-12 MiB RSS
// whatever the number of containers, so 20 containers cost well under 2 MiB
// each, where a Go process per container would cost several MiB each.
// Mutations (create, start, kill, stop, delete, pause) go through the monitor
// so that it always knows why a process exited; reads (State, List, Logs,
// Top, Stats) and Exec work straight from disk.
package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/topdir"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("container does not exist")
	ErrExists   = errors.New("container already exists")
	ErrState    = errors.New("container is in the wrong state")
	ErrInvalid  = errors.New("invalid container configuration")
)

// Status is the OCI lifecycle status plus paused.
type Status string

const (
	StatusCreating Status = "creating"
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusStopped  Status = "stopped"
)

// RestartPolicy is compose's restart: no, always, on-failure[:N], unless-stopped.
type RestartPolicy struct {
	Name       string `json:"name,omitempty"`
	MaxRetries int    `json:"maxRetries,omitempty"`
}

// Healthcheck is compose's healthcheck, run through Exec by the monitor.
// Test is ["CMD", args...], ["CMD-SHELL", script] or ["NONE"].
type Healthcheck struct {
	Test          []string      `json:"test"`
	Interval      time.Duration `json:"interval,omitempty"`
	Timeout       time.Duration `json:"timeout,omitempty"`
	StartPeriod   time.Duration `json:"startPeriod,omitempty"`
	StartInterval time.Duration `json:"startInterval,omitempty"`
	Retries       int           `json:"retries,omitempty"`
}

// CreateOptions are everything about a container that is not in the spec.
type CreateOptions struct {
	// Bundle is a directory holding config.json (used when Spec is nil) and,
	// unless RootfsMounts is set, the rootfs at spec.Root.Path.
	Bundle string `json:"bundle,omitempty"`
	// Spec, when set, is used instead of Bundle/config.json.
	Spec *specs.Spec `json:"-"`
	// RootfsMounts, when set, are mounted (in order) to make the rootfs,
	// typically one overlay mount with Destination "/".
	RootfsMounts []specs.Mount `json:"rootfsMounts,omitempty"`
	// Stdio, when set, are handed to the container as fds 0, 1, 2 (a nil
	// entry means /dev/null). When unset, stdout and stderr go to the log.
	Stdio []*os.File `json:"-"`
	// ConsoleSocket, with process.terminal, is a connected unix socket:
	// the container's process gets a pty allocated in the container as its
	// stdio and controlling terminal, and the pty's master is sent over it
	// (runc's --console-socket). Used by the first start only.
	ConsoleSocket *os.File `json:"-"`
	// LogPath defaults to <root>/<id>/container.log; LogMaxSize (bytes,
	// default 10 MiB) and LogMaxFiles (default 3) rotate it.
	LogPath     string        `json:"logPath,omitempty"`
	LogMaxSize  int64         `json:"logMaxSize,omitempty"`
	LogMaxFiles int           `json:"logMaxFiles,omitempty"`
	Restart     RestartPolicy `json:"restart,omitempty"`
	// NoHealthRestart keeps a container that turns unhealthy running;
	// by default its restart policy restarts it as if it had crashed.
	NoHealthRestart bool         `json:"noHealthRestart,omitempty"`
	Healthcheck     *Healthcheck `json:"healthcheck,omitempty"`
	// Init runs a tiny reaping init as PID 1 in front of the process.
	Init bool `json:"init,omitempty"`
	// User, when set, is "user[:group]" (names or numbers) resolved against
	// the container's /etc/passwd and /etc/group; it overrides process.user.
	User string `json:"user,omitempty"`
	// PidFile receives the container's pid once it is created.
	PidFile string `json:"pidFile,omitempty"`
}

// Health is what the healthchecks recorded.
type Health struct {
	Status        string        `json:"status"` // starting, healthy, unhealthy
	FailingStreak int           `json:"failingStreak"`
	Log           []HealthProbe `json:"log,omitempty"`
}

// HealthProbe is one healthcheck run.
type HealthProbe struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	ExitCode int       `json:"exitCode"`
	Output   string    `json:"output,omitempty"`
}

// State is a container as recorded on disk.
type State struct {
	ID            string            `json:"id"`
	Bundle        string            `json:"bundle"`
	Status        Status            `json:"status"`
	Pid           int               `json:"pid,omitempty"`
	PidStart      uint64            `json:"pidStart,omitempty"` // /proc/pid/stat starttime: guards against pid reuse
	Created       time.Time         `json:"created"`
	Started       time.Time         `json:"started,omitempty"`
	Finished      time.Time         `json:"finished,omitempty"`
	ExitCode      int               `json:"exitCode"`
	Restarts      int               `json:"restarts"`
	StoppedByUser bool              `json:"stoppedByUser,omitempty"`
	Health        *Health           `json:"health,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	Cgroup        string            `json:"cgroup"`
	Rootfs        string            `json:"rootfs"`
	// HostMounts: the container runs in the host's mount namespace, its
	// root bound on a directory of the state root (or its rootfs mounts
	// there), everything it mounted on that: delete detaches it.
	HostMounts bool `json:"hostMounts,omitempty"`
	// Args is the container process's command line, as it runs (image
	// defaults merged): what `ps` shows; the spec itself is not kept here.
	Args    []string      `json:"args,omitempty"`
	Options CreateOptions `json:"options"`
}

// OCI renders the state as the runtime-spec state JSON.
func (s *State) OCI() specs.State {
	st := specs.State{Version: specs.Version, ID: s.ID, Bundle: s.Bundle, Annotations: s.Annotations}
	switch s.Status {
	case StatusCreating:
		st.Status = specs.StateCreating
	case StatusCreated:
		st.Status = specs.StateCreated
	case StatusRunning, StatusPaused:
		st.Status = specs.StateRunning
	default:
		st.Status = specs.StateStopped
	}
	if st.Status != specs.StateStopped {
		st.Pid = s.Pid
	}
	return st
}

// Runtime is one state root.
type Runtime struct {
	root string
}

// New opens (creating if needed) the state root.
func New(root string) (*Runtime, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := topdir.MkdirAll(abs, 0o711); err != nil { // a directory per container
		return nil, err
	}
	return &Runtime{root: abs}, nil
}

// Root is the state root directory.
func (r *Runtime) Root() string { return r.root }

func (r *Runtime) dir(id string) string { return filepath.Join(r.root, id) }

// checkID accepts what `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$` matches. Not
// a regexp: compiling that one (its bounded repetition unrolled 127 times)
// was 0.7 ms of the package's init, paid by every berth process, every
// container's init and exec child among them (GODEBUG=inittrace=1).
func checkID(id string) error {
	ok := len(id) >= 1 && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		alnum := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("%w: bad container id %q", ErrInvalid, id)
	}
	return nil
}

// readState loads a container's state without checking liveness.
func (r *Runtime) readState(id string) (*State, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(r.dir(id), "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: corrupt state: %w", id, err)
	}
	return &s, nil
}

// writeState replaces the state file atomically (write, rename).
func (r *Runtime) writeState(s *State) error {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir(s.ID), "state.json"), b)
}

// writeFileAtomic writes a temporary file and renames it over path: a
// reader, or a monitor killed at any point, sees the old or the new file,
// never a part. No fsync: the state describes processes, which an OS crash
// (the only thing fsync guards against) ends anyway, and a state root
// normally lives on /run, a tmpfs; where it does not (this machine's /run
// is ext4) each fsync was a disk flush on the create path, 4 to 6 a
// container.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// State returns a container's recorded state, corrected by what the
// process table says when no monitor is left to record the exit (a monitor
// that died cannot have). A live monitor records it itself once the log
// is drained, with the exit code: until then the state stands, rather
// than a stop with a code that is not yet known.
func (r *Runtime) State(id string) (*State, error) {
	s, err := r.readState(id)
	if err != nil {
		return nil, err
	}
	// The monitor first: a live one records every exit itself, and its
	// lock costs less to test than the kernel's text of /proc/PID/stat
	// (a quarter of an observation of 50 containers, pprof).
	if (s.Status == StatusRunning || s.Status == StatusCreated || s.Status == StatusPaused) && !r.monitorAlive() && !pidAlive(s.Pid, s.PidStart) {
		s.Status = StatusStopped
	}
	return s, nil
}

// List returns every container of the root, sorted by id.
func (r *Runtime) List() ([]*State, error) {
	ents, err := os.ReadDir(r.root)
	if err != nil {
		return nil, err
	}
	var out []*State
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := r.State(e.Name())
		if err != nil {
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
