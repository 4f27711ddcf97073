package watch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// fsWatcher turns inotify events into changed paths for two kinds of
// targets: single files (compose inputs), watched through their directory
// because editors replace a file by renaming a new one over it (a watch on
// the file itself would follow the old inode away); and trees (develop.watch
// paths), watched recursively, new directories followed as they appear.
// A target that does not exist yet is watched through its nearest existing
// ancestor, so that creating it (or its directory) is seen.
type fsWatcher struct {
	w *fsnotify.Watcher

	mu    sync.Mutex
	files map[string]bool // exact paths of interest
	trees map[string]bool // roots of recursive targets
	dirs  map[string]bool // directories currently watched
	// skip prunes directories below a tree that no rule wants
	// (node_modules under an ignore): each watch costs kernel memory and
	// max_user_watches is finite.
	skip func(dir string) bool
}

func newFSWatcher() (*fsWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &fsWatcher{w: w, files: map[string]bool{}, trees: map[string]bool{}, dirs: map[string]bool{}}, nil
}

func (f *fsWatcher) Close() error { return f.w.Close() }

// Set replaces the targets. Directories no longer needed stay watched
// until the next Set: the events they produce are filtered out anyway.
func (f *fsWatcher) Set(files, trees []string, skip func(dir string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files, f.trees, f.skip = setOf(files), setOf(trees), skip
	want := map[string]bool{}
	for p := range f.files {
		want[nearestDir(filepath.Dir(p))] = true
	}
	for t := range f.trees {
		if fi, err := os.Stat(t); err == nil && fi.IsDir() {
			f.addTree(t)
			continue
		}
		want[nearestDir(filepath.Dir(t))] = true
	}
	for d := range want {
		f.add(d)
	}
}

func setOf(paths []string) map[string]bool {
	m := make(map[string]bool, len(paths))
	for _, p := range paths {
		m[filepath.Clean(p)] = true
	}
	return m
}

// nearestDir is dir or its nearest existing ancestor.
func nearestDir(dir string) string {
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

func (f *fsWatcher) add(dir string) {
	if f.dirs[dir] {
		return
	}
	if err := f.w.Add(dir); err == nil {
		f.dirs[dir] = true
	}
}

// addTree watches dir and every directory below it that is not ignored,
// and returns the files found (a directory that appears with content, as a
// `mkdir -p a/b && touch a/b/c` or a `git checkout`, had files written
// before its watch existed).
func (f *fsWatcher) addTree(dir string) []string {
	var found []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p != dir && (ignoredName(d.Name()) || d.IsDir() && f.skip != nil && f.skip(p)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			f.add(p)
		} else {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// Run sends the changed paths of interest to out until ctx ends.
func (f *fsWatcher) Run(ctx context.Context, out chan<- []string) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err, ok := <-f.w.Errors:
			if !ok {
				return nil
			}
			// an overflowed queue lost events: treat everything as changed
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				if paths := f.all(); len(paths) > 0 {
					send(ctx, out, paths)
				}
			}
		case ev, ok := <-f.w.Events:
			if !ok {
				return nil
			}
			if paths := f.handle(ev); len(paths) > 0 {
				send(ctx, out, paths)
			}
		}
	}
}

func send(ctx context.Context, out chan<- []string, paths []string) {
	select {
	case out <- paths:
	case <-ctx.Done():
	}
}

func (f *fsWatcher) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for p := range f.files {
		out = append(out, p)
	}
	for p := range f.trees {
		out = append(out, p)
	}
	return out
}

// handle filters one event and keeps the watches in step with directories
// that appear and disappear.
func (f *fsWatcher) handle(ev fsnotify.Event) []string {
	if ev.Op == fsnotify.Chmod {
		return nil
	}
	p := filepath.Clean(ev.Name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		f.forget(p)
	}
	var out []string
	if f.files[p] {
		out = append(out, p)
	}
	if root, ok := f.treeOf(p); ok && !ignoredBelow(root, p) {
		out = append(out, p)
		if ev.Has(fsnotify.Create) {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() && (f.skip == nil || !f.skip(p)) {
				out = append(out, f.addTree(p)...)
			}
		}
	}
	if ev.Has(fsnotify.Create) {
		out = append(out, f.arm(p)...)
	}
	return out
}

// arm watches a directory that just appeared on the way to a target, and
// returns the targets that now exist below it.
func (f *fsWatcher) arm(created string) []string {
	var out []string
	for t := range f.files {
		if below(created, t) && t != created {
			f.add(nearestDir(filepath.Dir(t)))
			if _, err := os.Stat(t); err == nil {
				out = append(out, t)
			}
		}
	}
	for t := range f.trees {
		if below(created, t) && t != created {
			if fi, err := os.Stat(t); err == nil && fi.IsDir() {
				out = append(out, t)
				out = append(out, f.addTree(t)...)
			} else {
				f.add(nearestDir(filepath.Dir(t)))
				if err == nil {
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// forget drops the directories at or below a removed path (the kernel
// dropped their watches) and re-arms the targets that were behind them.
func (f *fsWatcher) forget(p string) {
	lost := false
	for d := range f.dirs {
		if below(p, d) {
			delete(f.dirs, d)
			_ = f.w.Remove(d)
			lost = true
		}
	}
	if !lost {
		return
	}
	for t := range f.files {
		f.add(nearestDir(filepath.Dir(t)))
	}
	for t := range f.trees {
		f.add(nearestDir(t))
	}
}

func (f *fsWatcher) treeOf(p string) (string, bool) {
	for t := range f.trees {
		if below(t, p) {
			return t, true
		}
	}
	return "", false
}

// below reports whether p is dir or inside it.
func below(dir, p string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) || dir == "/"
}
