package native

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/berth-dev/berth/runtime"
)

// Event is one container event, with who it happened to. The driver
// records what it does (create, start, stop, kill, rename, destroy) in
// <root>/events.jsonl; the runtime's monitor records what happens without
// anyone asking (die, restart, health_status) in its own file.
type Event struct {
	runtime.Event
	Name    string `json:"name,omitempty"`
	Service string `json:"service,omitempty"`
	Project string `json:"project,omitempty"`
	Image   string `json:"image,omitempty"`
}

func (d *Driver) eventsPath() string { return filepath.Join(d.opt.Root, "events.jsonl") }

// event records an action of the driver on a container.
func (d *Driver) event(r *record, action, detail string) {
	runtime.AppendEvent(d.eventsPath(), Event{
		Event: runtime.Event{Time: time.Now().UTC(), ID: r.ID, Action: action, Detail: detail},
		Name:  r.Name, Service: r.Spec.Service, Project: r.Spec.Project, Image: r.Spec.Image,
	})
}

// EventsOptions select events.
type EventsOptions struct {
	Project string    // "" for every project
	Since   time.Time // zero: only events from now on (with Follow)
	Follow  bool
}

// Events calls fn with every event of the project, oldest first: those
// recorded since o.Since, then, with Follow, new ones as they come, until
// ctx ends.
func (d *Driver) Events(ctx context.Context, o EventsOptions, fn func(Event) error) error {
	files := []string{d.eventsPath(), d.rt.EventsPath()}
	offsets := make([]int64, len(files))
	// Who each container is, from the driver's own events: a monitor event
	// read after its container was removed finds no record any more.
	known := map[string]Event{}
	emit := func(e Event) error { return d.emit(o, e, known, fn) }
	var past []Event
	for i, p := range files {
		evs, off := d.readEvents(p, 0)
		offsets[i] = off
		for _, e := range evs {
			if !o.Since.IsZero() && !e.Time.Before(o.Since) {
				past = append(past, e)
			}
		}
	}
	sort.SliceStable(past, func(i, j int) bool { return past[i].Time.Before(past[j].Time) })
	for _, e := range past {
		if err := emit(e); err != nil {
			return err
		}
	}
	for o.Follow {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		// Both writers' new events, in time order: a die written by the
		// monitor comes before the destroy that followed it.
		var fresh []Event
		for i, p := range files {
			evs, off := d.readEvents(p, offsets[i])
			offsets[i] = off
			fresh = append(fresh, evs...)
		}
		sort.SliceStable(fresh, func(i, j int) bool { return fresh[i].Time.Before(fresh[j].Time) })
		for _, e := range fresh {
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// emit fills in who a monitor event is about and filters by project.
func (d *Driver) emit(o EventsOptions, e Event, known map[string]Event, fn func(Event) error) error {
	switch k, ok := known[e.ID]; {
	case e.Project != "":
		known[e.ID] = e
	case ok:
		e.Name, e.Service, e.Project, e.Image = k.Name, k.Service, k.Project, k.Image
	default:
		r, err := d.readRecord(e.ID)
		if err != nil {
			return nil // a container gone before this reader saw it
		}
		e.Name, e.Service, e.Project, e.Image = r.Name, r.Spec.Service, r.Spec.Project, r.Spec.Image
	}
	if o.Project != "" && e.Project != o.Project {
		return nil
	}
	return fn(e)
}

// readEvents reads whole lines from offset on; a file that shrank (rotated)
// is read from its start.
func (d *Driver) readEvents(path string, offset int64) ([]Event, int64) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < offset {
		offset = 0
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, offset
	}
	var out []Event
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return out, offset // a partial last line is read next time
		}
		offset += int64(len(line))
		var e Event
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
}
