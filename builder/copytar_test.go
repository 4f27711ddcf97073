package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/berth-dev/berth/store/archive"
	"golang.org/x/sys/unix"
)

// treeState lists every object under root with its type, mode, owner and
// content or link target: what an image shows.
func treeState(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		unix.Lstat(p, &st)
		s := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			s += " ->" + l
		case info.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			s += fmt.Sprintf(" %q mtime=%d", data, st.Mtim.Sec)
		}
		out = append(out, s)
		return nil
	})
	sort.Strings(out)
	return out
}

// TestCopyPlanMatchesCopy: the layer COPY streams straight from its sources,
// applied over an image, gives the very tree that copying into the rootfs
// gives: destinations, created and existing parents, owners, modes,
// replaced files, merged directories, --parents, --chown and --chmod.
func TestCopyPlanMatchesCopy(t *testing.T) {
	needRoot(t)
	files := map[string]string{"a.txt": "a", "b.txt": "b", "dir/x": "x", "dir/sub/y": "y", "src/p/q.go": "q"}
	base := func(root string) {
		os.MkdirAll(filepath.Join(root, "w"), 0o700)
		os.Chown(filepath.Join(root, "w"), 5, 5)
		os.MkdirAll(filepath.Join(root, "ddir/sub"), 0o750)
		os.WriteFile(filepath.Join(root, "ddir/x"), []byte("old"), 0o600)
		os.MkdirAll(filepath.Join(root, "exists"), 0o755)
		os.WriteFile(filepath.Join(root, "exists/file"), []byte("old"), 0o644)
		os.MkdirAll(filepath.Join(root, "exists/x/deep"), 0o755)
		os.Symlink("/w", filepath.Join(root, "link"))
	}
	for _, tc := range []struct {
		name, dest, workdir, chown, chmod string
		srcs                              []string
		parents                           bool
		wantErr                           string
	}{
		{name: "file to new name", srcs: []string{"a.txt"}, dest: "/out"},
		{name: "file into existing dir", srcs: []string{"a.txt"}, dest: "/w/"},
		{name: "file into existing dir, no slash", srcs: []string{"a.txt"}, dest: "/w"},
		{name: "deep new parents", srcs: []string{"dir/sub/y"}, dest: "/p/q/r"},
		{name: "dir merged into existing", srcs: []string{"dir"}, dest: "/ddir"},
		{name: "replace a file", srcs: []string{"b.txt"}, dest: "/exists/file"},
		{name: "glob, workdir", srcs: []string{"*.txt"}, dest: "rel/", workdir: "/w"},
		{name: "chown and chmod", srcs: []string{"dir"}, dest: "/c/d/", chown: "7:8", chmod: "u+x,g-r"},
		{name: "chown into existing", srcs: []string{"dir", "a.txt"}, dest: "/ddir/", chown: "9:9", chmod: "0600"},
		{name: "parents", srcs: []string{"src/./p/q.go", "dir/sub"}, dest: "/par/", parents: true},
		{name: "whole context", srcs: []string{"."}, dest: "/"},
		{name: "file over a directory", srcs: []string{"dir"}, dest: "/exists", wantErr: "cannot replace a directory"},
		{name: "through an image symlink", srcs: []string{"a.txt"}, dest: "/link/", wantErr: "indirect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir, want, got := t.TempDir(), t.TempDir(), t.TempDir()
			writeFiles(t, ctxDir, files)
			base(want)
			base(got)
			c, err := OpenContext(ctxDir, "Dockerfile")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ms, err := selectSources(c.fs, tc.srcs, selectOptions{parents: tc.parents})
			if err != nil {
				t.Fatal(err)
			}
			spec := copySpec{Dest: tc.dest, Workdir: tc.workdir, Chown: tc.chown, Chmod: tc.chmod}
			wr, _ := openRootDir(want)
			defer wr.Close()
			o, err := copyOpts(wr, spec)
			if err != nil {
				t.Fatal(err)
			}
			copyErr := copyMatches(c.fs, wr, ms, tc.dest, tc.workdir, o)
			gr, _ := openRootDir(got)
			defer gr.Close()
			plan, planErr := planCopy(gr, ms, tc.dest, tc.workdir, o)
			if tc.wantErr == "indirect" {
				if !errors.Is(planErr, errIndirect) {
					t.Fatalf("want errIndirect, got %v", planErr)
				}
				return
			}
			if tc.wantErr != "" {
				if copyErr == nil || planErr == nil || !strings.Contains(planErr.Error(), tc.wantErr) {
					t.Fatalf("want %q: copy %v, plan %v", tc.wantErr, copyErr, planErr)
				}
				return
			}
			if copyErr != nil || planErr != nil {
				t.Fatalf("copy %v, plan %v", copyErr, planErr)
			}
			var layer bytes.Buffer
			if err := plan.write(context.Background(), c.fs, &layer); err != nil {
				t.Fatal(err)
			}
			if _, err := archive.Extract(context.Background(), got, &layer, archive.Options{Mode: archive.Flatten}); err != nil {
				t.Fatal(err)
			}
			w, g := treeState(t, want), treeState(t, got)
			if strings.Join(w, "\n") != strings.Join(g, "\n") {
				t.Errorf("copied into the rootfs:\n%s\nfrom the streamed layer:\n%s", strings.Join(w, "\n"), strings.Join(g, "\n"))
			}
		})
	}
}
