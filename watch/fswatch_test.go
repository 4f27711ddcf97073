package watch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// collect gathers the watcher's paths until want are all seen (or fails
// after a generous deadline: inotify delivers in microseconds).
func collect(t *testing.T, out <-chan []string, want ...string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for {
		missing := false
		for _, w := range want {
			if !seen[w] {
				missing = true
			}
		}
		if !missing {
			return seen
		}
		select {
		case ps := <-out:
			for _, p := range ps {
				seen[p] = true
			}
		case <-deadline:
			t.Fatalf("saw %v, want %v", seen, want)
		}
	}
}

func TestFSWatcherFilesAndTrees(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	later := filepath.Join(dir, "conf", "sub", "app.env") // its directory does not exist yet
	src := filepath.Join(dir, "src")
	os.WriteFile(compose, []byte("a"), 0o644)
	os.Mkdir(src, 0o755)

	fw, err := newFSWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	fw.Set([]string{compose, later}, []string{src}, func(d string) bool { return filepath.Base(d) == "skipped" })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan []string, 64)
	go fw.Run(ctx, out)

	// an editor's save: write a temporary file, rename it over the original
	tmp := filepath.Join(dir, ".compose.yaml.tmp")
	os.WriteFile(tmp, []byte("b"), 0o644)
	os.Rename(tmp, compose)
	collect(t, out, compose)
	// and again: the watch did not follow the old inode away
	os.WriteFile(compose, []byte("c"), 0o644)
	collect(t, out, compose)

	// a missing input's directories are created, then the file
	os.MkdirAll(filepath.Dir(later), 0o755)
	os.WriteFile(later, []byte("X=1"), 0o644)
	collect(t, out, later)

	// new directories below a tree are followed, files made in them at once too
	deep := filepath.Join(src, "a", "b")
	os.MkdirAll(deep, 0o755)
	os.WriteFile(filepath.Join(deep, "f.go"), nil, 0o644)
	collect(t, out, filepath.Join(deep, "f.go"))
	os.WriteFile(filepath.Join(deep, "g.go"), nil, 0o644)
	collect(t, out, filepath.Join(deep, "g.go"))
	os.RemoveAll(filepath.Join(src, "a"))
	collect(t, out, filepath.Join(src, "a"))

	// a directory the rules exclude is not watched
	os.MkdirAll(filepath.Join(src, "skipped"), 0o755)
	collect(t, out, filepath.Join(src, "skipped"))
	os.WriteFile(filepath.Join(src, "skipped", "x"), nil, 0o644)
	os.WriteFile(filepath.Join(src, "after"), nil, 0o644)
	if seen := collect(t, out, filepath.Join(src, "after")); seen[filepath.Join(src, "skipped", "x")] {
		t.Fatal("file in a skipped directory reported")
	}

	// .git and editor files are not reported; a later real change is
	os.MkdirAll(filepath.Join(src, ".git", "refs"), 0o755)
	os.WriteFile(filepath.Join(src, ".git", "HEAD"), nil, 0o644)
	os.WriteFile(filepath.Join(src, ".main.go.swp"), nil, 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), nil, 0o644)
	// inotify keeps the order of events: the ignored ones came before
	seen := collect(t, out, filepath.Join(src, "main.go"))
	for _, p := range []string{filepath.Join(src, ".git"), filepath.Join(src, ".git", "HEAD"), filepath.Join(src, ".main.go.swp")} {
		if seen[p] {
			t.Fatalf("ignored path %s reported", p)
		}
	}
}
