package gitops

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// Sync states, as Argo CD and Flux name them.
const (
	Synced    = "Synced"    // the wanted revision (or one equal to it) runs
	OutOfSync = "OutOfSync" // a newer revision is wanted and not applied yet
	Degraded  = "Degraded"  // the wanted revision failed, or a service is unhealthy
)

// Wanted is the revision that should run: the pin, else the head.
func (r *Record) Wanted() string {
	if r.Pin != nil {
		return r.Pin.Revision
	}
	return r.Head
}

// State is the sync state the record alone tells (services' health aside).
func (r *Record) State() string {
	w := r.Wanted()
	switch {
	case r.Failed != "" && r.Failed == w:
		return Degraded
	case w == "" || w == r.Applied || w == r.Unchanged:
		return Synced
	}
	return OutOfSync
}

// Status is what `berth sync status` reports.
type Status struct {
	Name      string `json:"name"`
	URL       string `json:"url"`
	Ref       string `json:"ref"`
	Path      string `json:"path"`
	Project   string `json:"project"`
	Applied   string `json:"applied"`
	Wanted    string `json:"wanted"`
	Pinned    bool   `json:"pinned"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
	// FetchError is why the remote cannot be polled, while it cannot.
	FetchError string          `json:"fetch_error,omitempty"`
	Last       *Entry          `json:"last,omitempty"`
	Services   []ServiceStatus `json:"services"`
}

// ServiceStatus is one service's containers as the machine has them.
type ServiceStatus struct {
	Name       string `json:"name"`
	Containers int    `json:"containers"`
	Running    int    `json:"running"`
	Health     string `json:"health"` // healthy, unhealthy, starting, running, exited, none
}

// Syncs lists the sync state directories under root.
func Syncs(root string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(root, "gitops", "*", recordFile))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range m {
		out = append(out, filepath.Dir(p))
	}
	slices.Sort(out)
	return out, nil
}

// ReadStatus reads the record under dir and, with d, the health of the
// project's services.
func ReadStatus(ctx context.Context, dir string, d driver.Driver) (*Status, error) {
	r, err := LoadRecord(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, recordFile)); err != nil {
		return nil, err
	}
	s := &Status{Name: filepath.Base(dir), URL: r.URL, Ref: r.Ref, Path: r.Path, Project: r.Project,
		Applied: r.Applied, Wanted: r.Wanted(), Pinned: r.Pin != nil, State: r.State(), LastError: r.LastError,
		FetchError: r.FetchError, Last: r.Last()}
	if d == nil || r.Project == "" {
		return s, nil
	}
	obs, err := d.Observe(ctx, r.Project)
	if err != nil {
		return nil, err
	}
	s.Services = services(obs)
	for _, svc := range s.Services {
		if !slices.Contains([]string{state.HealthHealthy, "running", "completed"}, svc.Health) && s.State == Synced {
			s.State = Degraded
		}
	}
	return s, nil
}

func services(obs *state.Observed) []ServiceStatus {
	by := map[string]*ServiceStatus{}
	var names []string
	for _, c := range obs.Containers {
		if c.OneOff {
			continue
		}
		s := by[c.Service]
		if s == nil {
			s = &ServiceStatus{Name: c.Service}
			by[c.Service] = s
			names = append(names, c.Service)
		}
		s.Containers++
		h := c.Status
		if c.Status == state.StatusRunning {
			s.Running++
			if c.Health != state.HealthNone {
				h = c.Health
			}
		} else if c.Status == state.StatusExited && c.ExitCode == 0 {
			h = "completed"
		}
		s.Health = worse(s.Health, h)
	}
	slices.Sort(names)
	out := make([]ServiceStatus, 0, len(names))
	for _, n := range names {
		out = append(out, *by[n])
	}
	return out
}

// worse keeps the least healthy of two container states.
func worse(a, b string) string {
	rank := func(s string) int {
		switch s {
		case "":
			return 0
		case state.HealthHealthy, "completed":
			return 1
		case "running":
			return 2
		case state.HealthStarting:
			return 3
		default:
			return 4
		}
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}
