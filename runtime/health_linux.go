package runtime

import (
	"context"
	"os"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const healthLogSize = 5

func (m *monitor) startHealth(sup *supervised, s *State) {
	hc := s.Options.Healthcheck
	if hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		return
	}
	if sup.health != nil {
		sup.health()
	}
	ctx, cancel := context.WithCancel(context.Background())
	sup.health = cancel
	started := s.Started
	if started.IsZero() {
		started = time.Now()
	}
	m.updateHealth(s.ID, func(h *Health) { *h = Health{Status: "starting"} })
	go m.healthLoop(ctx, s.ID, *hc, started)
}

func healthDefaults(hc *Healthcheck) {
	if hc.Interval <= 0 {
		hc.Interval = 30 * time.Second
	}
	if hc.Timeout <= 0 {
		hc.Timeout = 30 * time.Second
	}
	if hc.Retries <= 0 {
		hc.Retries = 3
	}
	if hc.StartInterval <= 0 {
		hc.StartInterval = 5 * time.Second
	}
}

func healthArgs(test []string) []string {
	switch test[0] {
	case "CMD":
		return test[1:]
	case "CMD-SHELL":
		return []string{"/bin/sh", "-c", strings.Join(test[1:], " ")}
	}
	return test
}

func (m *monitor) healthLoop(ctx context.Context, id string, hc Healthcheck, started time.Time) {
	healthDefaults(&hc)
	for {
		inStart := time.Since(started) < hc.StartPeriod
		wait := hc.Interval
		if inStart {
			wait = hc.StartInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		probe := m.probe(ctx, id, hc)
		if ctx.Err() != nil {
			return
		}
		inStart = time.Since(started) < hc.StartPeriod
		turned, before, after := false, "", ""
		m.updateHealth(id, func(h *Health) {
			before = h.Status
			defer func() { after = h.Status }()
			h.Log = append(h.Log, probe)
			if len(h.Log) > healthLogSize {
				h.Log = h.Log[len(h.Log)-healthLogSize:]
			}
			if probe.ExitCode == 0 {
				h.Status, h.FailingStreak = "healthy", 0
				return
			}
			if inStart && h.Status == "starting" {
				return // failures in the start period do not count
			}
			h.FailingStreak++
			if h.FailingStreak >= hc.Retries {
				turned = h.Status != "unhealthy"
				h.Status = "unhealthy"
			}
		})
		if after != before && after != "" {
			m.rt.event(id, "health_status: "+after, "", nil)
		}
		if turned {
			m.restartUnhealthy(id)
		}
	}
}

func (m *monitor) probe(ctx context.Context, id string, hc Healthcheck) HealthProbe {
	p := HealthProbe{Start: time.Now().UTC(), ExitCode: -1}
	r, w, err := os.Pipe()
	if err != nil {
		p.Output = err.Error()
		return p
	}
	pctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	outc := make(chan string, 1)
	go func() {
		b := make([]byte, 4096)
		n, _ := readFull(r, b)
		r.Close()
		outc <- string(b[:n])
	}()
	code, err := m.rt.Exec(pctx, id, &specs.Process{Args: healthArgs(hc.Test)}, ExecOptions{Stdio: []*os.File{nil, w, w}})
	w.Close()
	p.Output = <-outc
	p.End = time.Now().UTC()
	switch {
	case pctx.Err() == context.DeadlineExceeded:
		p.ExitCode = -1
		p.Output = "health check timed out"
	case err != nil:
		p.Output = err.Error()
	default:
		p.ExitCode = code
	}
	return p
}

// readFull reads until EOF or the buffer is full, then drains the rest.
func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := f.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	var sink [512]byte
	for {
		if _, err := f.Read(sink[:]); err != nil {
			return n, nil
		}
	}
}

func (m *monitor) updateHealth(id string, fn func(*Health)) {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	s, err := m.rt.readState(id)
	if err != nil || s.Status == StatusStopped {
		return
	}
	if s.Health == nil {
		s.Health = &Health{}
	}
	fn(s.Health)
	m.rt.writeState(s)
}
