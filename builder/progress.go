package builder

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress prints build steps the way `docker build --progress=plain`
// does: a number per step, its output prefixed, then DONE with the time or
// CACHED. Stages building in parallel interleave whole lines.
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	n      int
	steps  int
	cached int
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) printf(format string, a ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, a...)
}

// step is one numbered instruction in the output.
type step struct {
	p     *progress
	id    int
	start time.Time
	tail  *tailBuffer
}

func (p *progress) begin(s *PlannedStage, i, total int, text string) *step {
	p.mu.Lock()
	p.n++
	p.steps++
	st := &step{p: p, id: p.n, start: time.Now(), tail: &tailBuffer{max: 20}}
	p.mu.Unlock()
	p.printf("#%d [%s %d/%d] %s\n", st.id, s.Label(), i, total, oneLine(text))
	return st
}

func (s *step) cached() {
	s.p.mu.Lock()
	s.p.cached++
	s.p.mu.Unlock()
	s.p.printf("#%d CACHED\n", s.id)
}

func (s *step) done() {
	s.p.printf("#%d DONE %.1fs\n", s.id, time.Since(s.start).Seconds())
}

func (s *step) failed(err error) {
	s.p.printf("#%d ERROR: %v\n", s.id, err)
}

// Write streams a RUN's output line by line and keeps its last lines for
// the error message.
func (s *step) Write(b []byte) (int, error) {
	s.tail.Write(b)
	if s.p.w == nil {
		return len(b), nil
	}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		s.p.printf("#%d %.3f %s", s.id, time.Since(s.start).Seconds(), strings.TrimSuffix(line, "\n")+"\n")
	}
	return len(b), nil
}

func (p *progress) counts() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.steps, p.cached
}

func (p *progress) finish(r *Result, d time.Duration) {
	p.printf("#%d writing image %s done\n", p.n+1, r.ID)
	for _, t := range r.Tags {
		p.printf("#%d naming to %s done\n", p.n+1, t)
	}
	p.printf("#%d DONE %.2fs (%d steps, %d cached)\n", p.n+1, d.Seconds(), r.Steps, r.Cached)
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	return s
}

// tailBuffer keeps the last max lines written to it.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  bytes.Buffer
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part.Write(b)
	for {
		i := bytes.IndexByte(t.part.Bytes(), '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.part.Next(i + 1)[:i]))
		if len(t.lines) > t.max {
			t.lines = t.lines[1:]
		}
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if t.part.Len() > 0 {
		lines = append(append([]string(nil), lines...), t.part.String())
	}
	return strings.Join(lines, "\n")
}
