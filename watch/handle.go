package watch

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
)

// arm points the file watcher at the inputs and develop.watch paths of a
// load.
func (c *Controller) arm(l *loaded) {
	var trees []string
	for _, r := range l.rules {
		trees = append(trees, r.Path)
	}
	c.fs.Set(l.inputs, trees, func(dir string) bool {
		for _, r := range l.rules {
			if below(r.Path, dir) && !r.prunes(dir) {
				return false
			}
		}
		return true
	})
}

// handle acts on one debounced batch: a reload when a project input is in
// it, then the develop.watch actions for the rest.
func (c *Controller) handle(ctx context.Context, batch []string) {
	l := c.current()
	var inputs, other []string
	for _, p := range batch {
		if slices.Contains(l.inputs, p) {
			inputs = append(inputs, p)
		} else {
			other = append(other, p)
		}
	}
	if len(inputs) > 0 {
		l = c.reload(ctx, inputs)
	}
	if len(other) > 0 {
		c.develop(ctx, l, other)
	}
}

// reload loads the project again. An invalid project is reported and the
// last good one stays in force; a valid one replaces it and kicks the loop.
func (c *Controller) reload(ctx context.Context, changed []string) *loaded {
	old := c.current()
	what := c.relNames(changed)
	l, err := load(ctx, c.o.Compose, c.o.Adjust)
	if err != nil {
		c.printf("berth: watch: %s changed: invalid project, keeping the running one: %v\n", what, err)
		return old
	}
	if l.desired.Project != old.desired.Project {
		// the loop, its lock and its observations are the old project's
		c.printf("berth: watch: %s changed: the project name changed (%s -> %s); restart berth watch to follow it, keeping the running one\n",
			what, old.desired.Project, l.desired.Project)
		return old
	}
	c.warn(l)
	c.mu.Lock()
	c.good = l
	c.mu.Unlock()
	c.arm(l)
	c.printf("berth: watch: %s changed: %s\n", what, describeChange(old.desired, l.desired))
	c.ensureLoop()
	c.loop.Kick(what + " changed")
	return l
}

// relNames renders paths relative to the project directory.
func (c *Controller) relNames(paths []string) string {
	dir := c.current().desired.WorkingDir
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if rel, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(rel, "..") {
			p = rel
		}
		out = append(out, p)
	}
	return strings.Join(out, ", ")
}

func (c *Controller) warn(l *loaded) {
	if c.o.OnWarning != nil && len(l.unimplemented) > 0 {
		c.o.OnWarning(l.unimplemented)
	}
}
