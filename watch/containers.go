package watch

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// observing is the loop's driver, remembering the project's containers
// from the last observation so that container events can be filtered to
// this project's.
type observing struct {
	driver.Driver
	mu    sync.Mutex
	names map[string]string // container id -> name
}

func (o *observing) Observe(ctx context.Context, project string) (*state.Observed, error) {
	obs, err := o.Driver.Observe(ctx, project)
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(obs.Containers))
	for _, c := range obs.Containers {
		names[c.ID] = c.Name
	}
	o.mu.Lock()
	o.names = names
	o.mu.Unlock()
	return obs, nil
}

// name is the container's name when it belongs to the project.
func (o *observing) name(id string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, ok := o.names[id]
	return n, ok
}

// containerEvents kicks the loop whenever the runtime rewrites the state of
// one of the project's containers (<dir>/<id>/state.json: started, exited,
// restarted by its monitor, health changed). A container killed from
// outside is therefore replaced within one pass, not at the next resync.
func containerEvents(dir string, name func(id string) (string, bool)) reconciler.Source {
	return reconciler.SourceFunc(func(ctx context.Context, kick func(string)) error {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return err
		}
		defer w.Close()
		if err := w.Add(dir); err != nil {
			return err
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() {
				_ = w.Add(filepath.Join(dir, e.Name()))
			}
		}
		bo := &kickBackoff{ids: map[string]*kickState{}}
		defer bo.stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err, ok := <-w.Errors:
				if !ok {
					return nil
				}
				kick("container events lost: " + err.Error())
			case ev, ok := <-w.Events:
				if !ok {
					return nil
				}
				if filepath.Dir(ev.Name) == dir {
					if ev.Has(fsnotify.Create) {
						_ = w.Add(ev.Name) // a new container's state directory
					}
					continue
				}
				if filepath.Base(ev.Name) != "state.json" || ev.Op == fsnotify.Chmod {
					continue
				}
				id := filepath.Base(filepath.Dir(ev.Name))
				if n, ok := name(id); ok {
					bo.event(id, func() { kick("container " + n + " changed state") })
				}
			}
		}
	})
}

// kickBackoff spaces out the kicks of one container: the first change is
// answered at once (a container killed from outside comes back within a
// pass), but a container that keeps changing (crash-looping: every restart
// exits again) is looked at after 1s, 2s, 4s... up to 30s, instead of in a
// tight loop.
type kickBackoff struct {
	mu  sync.Mutex
	ids map[string]*kickState
}

type kickState struct {
	last    time.Time
	delay   time.Duration
	pending *time.Timer
}

const (
	kickCalm     = 10 * time.Second // quiet this long: back to immediate
	kickMinDelay = time.Second
	kickMaxDelay = 30 * time.Second
)

func (b *kickBackoff) event(id string, kick func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.ids[id]
	if s == nil {
		s = &kickState{}
		b.ids[id] = s
	}
	if s.pending != nil {
		return // a kick is already scheduled: it will see this change too
	}
	fire := func() {
		b.mu.Lock()
		s.last, s.pending = time.Now(), nil
		b.mu.Unlock()
		kick()
	}
	if time.Since(s.last) > kickCalm {
		s.delay = 0
		s.last = time.Now()
		go kick()
		return
	}
	s.delay = min(max(2*s.delay, kickMinDelay), kickMaxDelay)
	s.pending = time.AfterFunc(s.delay, fire)
}

func (b *kickBackoff) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.ids {
		if s.pending != nil {
			s.pending.Stop()
		}
	}
}
