package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// progress renders the reconciler's events the way docker compose does:
// on a terminal a block of lines, one per object, redrawn in place
// (` ✔ Container demo-web-1  Started  0.4s`); otherwise one plain line per
// step, one JSON object per step (compose's --progress json field names),
// or nothing.
type progress struct {
	mode   string // tty, plain, json, quiet
	w      io.Writer
	dryRun bool

	mu      sync.Mutex
	names   map[string]string // container id -> name, from Observe and creates
	created map[int]string    // CreateContainer op ID -> container name
	lines   []*progressLine
	byID    map[string]*progressLine
	drawn   int // lines of the tty block on screen
	stop    chan struct{}
	ticker  sync.WaitGroup
}

type progressLine struct {
	id, text, status string
	done, failed     bool
	start            time.Time
	took             time.Duration
}

// progressMode resolves --progress: auto means tty on a terminal.
func progressMode(w io.Writer) (string, error) {
	switch m := global.progress; m {
	case "", "auto":
		if isTerminal(w) {
			return "tty", nil
		}
		return "plain", nil
	case "tty", "plain", "json", "quiet":
		return m, nil
	default:
		return "", fmt.Errorf("--progress: unknown mode %q (want auto, tty, plain, json or quiet)", m)
	}
}

func newProgress(w io.Writer, dryRun bool) (*progress, error) {
	mode, err := progressMode(w)
	if err != nil {
		return nil, err
	}
	return &progress{mode: mode, w: w, dryRun: dryRun, names: map[string]string{},
		created: map[int]string{}, byID: map[string]*progressLine{}}, nil
}

// Observed learns the names of the containers the plan will act on by id.
func (p *progress) Observed(obs *state.Observed) {
	if obs == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range obs.Containers {
		p.names[c.ID] = c.Name
	}
}

// Driver wraps d so that every Observe and CreateContainer teaches the
// progress the names of containers that later events only know by id.
func (p *progress) Driver(d driver.Driver) driver.Driver { return namingDriver{d, p} }

type namingDriver struct {
	driver.Driver
	p *progress
}

func (n namingDriver) Observe(ctx context.Context, project string) (*state.Observed, error) {
	obs, err := n.Driver.Observe(ctx, project)
	n.p.Observed(obs)
	return obs, err
}

func (n namingDriver) CreateContainer(ctx context.Context, s state.ContainerSpec) (string, error) {
	id, err := n.Driver.CreateContainer(ctx, s)
	if err == nil {
		n.p.mu.Lock()
		n.p.names[id] = s.Name
		n.p.mu.Unlock()
	}
	return id, err
}

// Event records one reconciler event. Calls are serialised by the
// executor, but the tty ticker redraws concurrently, hence the lock.
func (p *progress) Event(e reconciler.Event) {
	if p.mode == "quiet" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id, doing, done := p.describe(e.Op)
	if doing == "" && e.Phase != reconciler.Failed {
		return
	}
	switch e.Phase {
	case reconciler.Started:
		p.step(id, doing, "", false, false, 0)
	case reconciler.Succeeded:
		p.step(id, done, "", true, false, e.Duration)
	case reconciler.Failed:
		p.step(id, "Error", errText(e.Err), true, true, e.Duration)
	case reconciler.Skipped:
		// Never started: compose shows nothing for what it did not do.
	}
}

// Step reports a step that is not a plan operation (run's one-off
// container, the Gracefully stopping of attached up).
func (p *progress) Step(id, text string, done bool) {
	if p.mode == "quiet" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step(id, text, "", done, false, 0)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (p *progress) step(id, text, status string, done, failed bool, took time.Duration) {
	switch p.mode {
	case "plain":
		line := " " + id + "  " + text
		if status != "" {
			line += " " + status
		}
		if p.dryRun {
			line = "DRY-RUN MODE - " + line
		}
		fmt.Fprintln(p.w, line)
	case "json":
		b, _ := json.Marshal(jsonProgress{DryRun: p.dryRun, ID: id, Text: text, Status: status})
		fmt.Fprintln(p.w, string(b))
	case "tty":
		l := p.byID[id]
		if l == nil {
			l = &progressLine{id: id, start: time.Now()}
			p.byID[id] = l
			p.lines = append(p.lines, l)
		}
		l.text, l.status, l.done, l.failed = text, status, done, failed
		if done {
			l.took = took
			if took == 0 {
				l.took = time.Since(l.start)
			}
		}
		p.startTicker()
		p.draw()
	}
}

// jsonProgress has the field names of docker compose's --progress json.
type jsonProgress struct {
	DryRun bool   `json:"dry-run,omitempty"`
	Tail   bool   `json:"tail,omitempty"`
	ID     string `json:"id,omitempty"`
	Text   string `json:"text,omitempty"`
	Status string `json:"status,omitempty"`
}

// describe names an operation's object as compose does ("Container
// demo-web-1", `Volume "demo_data"`) with its in-progress and done verbs.
func (p *progress) describe(op *reconciler.Op) (id, doing, done string) {
	switch op.Kind {
	case reconciler.EnsureImage:
		if op.Image != nil && op.Image.Build != nil {
			return "Image " + op.Image.Ref, "Building", "Built"
		}
		ref := strings.TrimPrefix(op.Object, "image:")
		if op.Image != nil {
			ref = op.Image.Ref
		}
		return "Image " + ref, "Pulling", "Pulled"
	case reconciler.CreateNetwork:
		return "Network " + op.Network.Name, "Creating", "Created"
	case reconciler.RemoveNetwork:
		return "Network " + op.Name, "Removing", "Removed"
	case reconciler.CreateVolume:
		return fmt.Sprintf("Volume %q", op.Volume.Name), "Creating", "Created"
	case reconciler.RemoveVolume:
		return fmt.Sprintf("Volume %q", op.Name), "Removing", "Removed"
	case reconciler.Delay:
		return "Service " + strings.TrimPrefix(op.Object, "service:"), "Update delay " + op.Reason, "Update delay over"
	}
	name := p.containerName(op)
	id = "Container " + name
	if op.Reason == "rollback" { // undoing a failed update's replica
		plain := *op
		plain.Reason = ""
		_, doing, done := p.describe(&plain)
		return id, "Rolling back: " + strings.ToLower(doing), "Rolled back: " + strings.ToLower(done)
	}
	switch op.Kind {
	case reconciler.CreateContainer:
		p.created[op.ID] = name
		if strings.Contains(op.Reason, "changed") || strings.Contains(op.Reason, "recreate") {
			return id, "Recreate", "Recreated"
		}
		return id, "Creating", "Created"
	case reconciler.StartContainer:
		return id, "Starting", "Started"
	case reconciler.StopContainer:
		return id, "Stopping", "Stopped"
	case reconciler.RemoveContainer:
		return id, "Removing", "Removed"
	case reconciler.RenameContainer:
		if op.SetsAside() {
			return id, "", "" // a step of a recreate, as compose's rename is
		}
		return id, "Renaming", "Renamed"
	case reconciler.Monitor:
		return id, "Monitoring " + op.Reason, "Stable"
	case reconciler.WaitContainer:
		switch op.Condition {
		case driver.WaitHealthy:
			return id, "Waiting", "Healthy"
		case driver.WaitExitedSuccessfully:
			return id, "Waiting", "Exited"
		}
		return id, "Waiting", "Running"
	}
	return op.Object, string(op.Kind), string(op.Kind) + " done"
}

// containerName finds the name of the container an op acts on: its spec,
// the name of an existing container by id, or the name the create op it
// follows gave (a CreateContainer's Started event precedes every op that
// takes its id, so created is current even across rounds).
func (p *progress) containerName(op *reconciler.Op) string {
	if op.Container != nil && op.Container.Name != "" {
		return op.Container.Name
	}
	if n, ok := p.names[op.ContainerID]; ok && op.ContainerID != "" {
		return n
	}
	if n, ok := p.created[op.IDFrom]; ok && op.IDFrom != 0 {
		return n
	}
	if op.ContainerID != "" {
		return shortContainerID(op.ContainerID)
	}
	return strings.TrimPrefix(op.Object, "service:")
}

func shortContainerID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// startTicker redraws the tty block so that running timers and the
// spinner move while a slow step (a healthcheck wait) runs. Callers hold mu.
func (p *progress) startTicker() {
	if p.stop != nil {
		return
	}
	p.stop = make(chan struct{})
	p.ticker.Add(1)
	go func(stop chan struct{}) {
		defer p.ticker.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	}(p.stop)
}

// Close stops the ticker and draws the final block.
func (p *progress) Close() {
	p.mu.Lock()
	stop := p.stop
	p.stop = nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		p.ticker.Wait()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "tty" && len(p.lines) > 0 {
		p.draw()
	}
}

// draw rewrites the tty block in place. Callers hold mu.
func (p *progress) draw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	done, width := 0, 0
	for _, l := range p.lines {
		if l.done {
			done++
		}
		width = max(width, len(l.id))
	}
	header := fmt.Sprintf("[+] Running %d/%d", done, len(p.lines))
	if p.dryRun {
		header += " (DRY RUN MODE)"
	}
	b.WriteString("\x1b[2K" + header + "\n")
	frame := spinner[int(time.Now().UnixMilli()/100)%len(spinner)]
	for _, l := range p.lines {
		mark, took := frame, time.Since(l.start)
		switch {
		case l.failed:
			mark, took = "\x1b[31m✘\x1b[0m", l.took
		case l.done:
			mark, took = "\x1b[32m✔\x1b[0m", l.took
		}
		text := l.text
		if l.status != "" {
			text += " " + l.status
		}
		fmt.Fprintf(&b, "\x1b[2K %s %-*s  %-10s %5.1fs\n", mark, width, l.id, text, took.Seconds())
	}
	p.drawn = len(p.lines) + 1
	io.WriteString(p.w, b.String())
}
