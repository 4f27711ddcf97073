package builder

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// copyCase runs a COPY of srcs to dest (with workdir) from a context into an
// image root, both temporary, and returns the files of the image root.
func copyCase(t *testing.T, ctxFiles map[string]string, prepare func(ctxDir, root string), srcs []string, dest, workdir string, so selectOptions) ([]string, error) {
	t.Helper()
	ctxDir, root := t.TempDir(), t.TempDir()
	writeFiles(t, ctxDir, ctxFiles)
	if prepare != nil {
		prepare(ctxDir, root)
	}
	c, err := OpenContext(ctxDir, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if so.ignored == nil {
		so.ignored = c.Ignored
	}
	ms, err := selectSources(c.fs, srcs, so)
	if err != nil {
		return nil, err
	}
	rd, err := openRootDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := copyMatches(c.fs, rd, ms, dest, workdir, copyOptions{uid: -1, gid: -1}); err != nil {
		return nil, err
	}
	return listTree(t, root), nil
}

func listTree(t *testing.T, root string) []string {
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if info.IsDir() {
			rel += "/"
		} else if info.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			rel += "->" + l
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out
}

func TestCopySemantics(t *testing.T) {
	files := map[string]string{"a.txt": "a", "b.txt": "b", "dir/x": "x", "dir/sub/y": "y", "other.md": "m"}
	for _, tc := range []struct {
		name    string
		srcs    []string
		dest    string
		workdir string
		want    string
	}{
		{"file to new name", []string{"a.txt"}, "/out", "", "out"},
		{"file into dir (slash)", []string{"a.txt"}, "/out/", "", "out/ out/a.txt"},
		{"dir contents, not the dir", []string{"dir"}, "/out", "", "out/ out/sub/ out/sub/y out/x"},
		{"glob needs dir dest", []string{"*.txt"}, "/out/", "", "out/ out/a.txt out/b.txt"},
		{"relative to workdir", []string{"a.txt"}, "rel/", "/w", "w/ w/rel/ w/rel/a.txt"},
		{"dot dest is workdir", []string{"a.txt"}, ".", "/w", "w/ w/a.txt"},
		{"creates parents", []string{"dir/sub/y"}, "/p/q/r", "", "p/ p/q/ p/q/r"},
		{"absolute source is context-relative", []string{"/a.txt"}, "/o/", "", "o/ o/a.txt"},
		{"whole context", []string{"."}, "/c/", "", "c/ c/a.txt c/b.txt c/dir/ c/dir/sub/ c/dir/sub/y c/dir/x c/other.md"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := copyCase(t, files, nil, tc.srcs, tc.dest, tc.workdir, selectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got  %s\nwant %s", strings.Join(got, " "), tc.want)
			}
		})
	}
}

func TestCopyManySourcesNeedDirectory(t *testing.T) {
	_, err := copyCase(t, map[string]string{"a": "", "b": ""}, nil, []string{"a", "b"}, "/out", "", selectOptions{})
	if err == nil || !strings.Contains(err.Error(), "must be a directory") {
		t.Fatalf("got %v", err)
	}
}

func TestCopyExcludeAndParents(t *testing.T) {
	files := map[string]string{"src/a/x.go": "", "src/a/x.tmp": "", "src/b/y.go": "", "keep.go": ""}
	got, err := copyCase(t, files, nil, []string{"src/./*/*.go"}, "/dst/", "", selectOptions{parents: true, excludes: []string{"**/*.tmp"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "dst/ dst/a/ dst/a/x.go dst/b/ dst/b/y.go" {
		t.Errorf("--parents: %v", got)
	}
	got, err = copyCase(t, files, nil, []string{"src"}, "/dst", "", selectOptions{excludes: []string{"**/*.tmp", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "dst/ dst/a/ dst/a/x.go" {
		t.Errorf("--exclude: %v", got)
	}
}

func TestDockerignore(t *testing.T) {
	files := map[string]string{
		".dockerignore": "*.log\nsecret/\n!important.log\n",
		"app.log":       "", "important.log": "", "main.go": "", "secret/key": "", "Dockerfile": "",
	}
	got, err := copyCase(t, files, nil, []string{"."}, "/c/", "", selectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "c/ c/.dockerignore c/Dockerfile c/important.log c/main.go" {
		t.Errorf("ignored files copied: %v", got)
	}
	if _, err := copyCase(t, files, nil, []string{"secret/key"}, "/k", "", selectOptions{}); err == nil {
		t.Error("an ignored file was selectable by name")
	}
	if _, err := copyCase(t, files, nil, []string{"*.log"}, "/l/", "", selectOptions{}); err != nil {
		t.Errorf("glob with a non-ignored match: %v", err)
	}
	// Dockerfile.dockerignore takes precedence over .dockerignore
	files["Dockerfile.dockerignore"] = "main.go\n"
	got, err = copyCase(t, files, nil, []string{"."}, "/c/", "", selectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(got, " "), "main.go") || !strings.Contains(strings.Join(got, " "), "app.log") {
		t.Errorf("Dockerfile.dockerignore not used: %v", got)
	}
}

func TestCopyEscapes(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret": "s"})
	files := map[string]string{"a": "a", "dir/b": "b"}
	// sources: .., a symlink out, a directory symlink out, a symlink in a path
	for _, tc := range []struct {
		name string
		prep func(ctxDir, root string)
		src  string
	}{
		{"dotdot", nil, "../secret"},
		{"symlink to absolute", func(c, r string) { os.Symlink(filepath.Join(outside, "secret"), filepath.Join(c, "l")) }, "l"},
		{"symlink relative out", func(c, r string) { os.Symlink("../../../../../../"+outside+"/secret", filepath.Join(c, "l")) }, "l"},
		{"dir symlink in path", func(c, r string) { os.Symlink(outside, filepath.Join(c, "d")) }, "d/secret"},
	} {
		t.Run("read "+tc.name, func(t *testing.T) {
			_, err := copyCase(t, files, tc.prep, []string{tc.src}, "/x", "", selectOptions{})
			if err == nil {
				t.Fatal("read outside the context")
			}
		})
	}
	// symlinks below a copied directory are copied as links, not followed
	got, err := copyCase(t, files, func(c, r string) { os.Symlink(filepath.Join(outside, "secret"), filepath.Join(c, "dir/out")) }, []string{"dir"}, "/d", "", selectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(got, " "), "d/out->"+filepath.Join(outside, "secret")) {
		t.Errorf("inner symlink: %v", got)
	}
	// destinations: symlinks in the image resolve inside the image root
	for _, tc := range []struct {
		name, dest string
		prep       func(ctxDir, root string)
	}{
		{"abs dir symlink", "/evil/", func(c, r string) { os.Symlink(outside, filepath.Join(r, "evil")) }},
		{"relative dir symlink", "/evil/", func(c, r string) { os.Symlink("../../../../../../../"+outside, filepath.Join(r, "evil")) }},
		{"file symlink", "/target", func(c, r string) { os.Symlink(filepath.Join(outside, "victim"), filepath.Join(r, "target")) }},
		{"dotdot dest", "/../../../../" + outside + "/", nil},
	} {
		t.Run("write "+tc.name, func(t *testing.T) {
			copyCase(t, files, tc.prep, []string{"a"}, tc.dest, "", selectOptions{})
			entries, _ := os.ReadDir(outside)
			if len(entries) != 1 {
				t.Fatalf("wrote outside the root: %v", entries)
			}
		})
	}
}

func TestDigestMatches(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"d/a": "1", "d/b": "2"})
	sum := func() string {
		c, err := OpenContext(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ms, err := selectSources(c.fs, []string{"d"}, selectOptions{ignored: c.Ignored})
		if err != nil {
			t.Fatal(err)
		}
		s, err := digestMatches(c.fs, ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := sum()
	os.Chtimes(filepath.Join(dir, "d/a"), time0, time0)
	if sum() != s1 {
		t.Error("mtime changes the content digest")
	}
	writeFiles(t, dir, map[string]string{"d/a": "changed"})
	s2 := sum()
	if s2 == s1 {
		t.Error("content change not seen")
	}
	os.Chmod(filepath.Join(dir, "d/b"), 0o755)
	if sum() == s2 {
		t.Error("mode change not seen")
	}
	writeFiles(t, dir, map[string]string{".dockerignore": "d/c\n", "d/c": "ignored"})
	s3 := sum()
	writeFiles(t, dir, map[string]string{"d/c": "ignored and changed"})
	if sum() != s3 {
		t.Error("ignored file changes the digest")
	}
}

var time0 = mustTime("2001-01-01T00:00:00Z")

func TestFileHashesTrustOnlyUnchangedFiles(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	writeFiles(t, dir, map[string]string{"f": "aaaa"})
	digest := func() string {
		c, err := OpenContext(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fh := loadFileHashes(state, dir)
		defer fh.save()
		ms, err := selectSources(c.fs, []string{"f"}, selectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := digestMatches(c.fs, ms, fh)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1 := digest()
	if len(loadFileHashes(state, dir).entries) != 0 {
		t.Error("a file changed just now was trusted")
	}
	defer func(old time.Duration) { trustAge = old }(trustAge)
	trustAge = -time.Hour // trust everything from here on
	if digest() != d1 {
		t.Fatal("digest not stable")
	}
	fh := loadFileHashes(state, dir)
	e := fh.entries["f"]
	if e.Digest == "" {
		t.Fatal("not recorded")
	}
	e.Digest = "planted"
	fh.entries["f"], fh.dirty = e, true
	fh.save()
	if digest() == d1 {
		t.Error("the recorded digest of an unchanged file was not used")
	}
	// same size, mtime put back: ctime still moves, so the change is seen
	st, _ := os.Stat(filepath.Join(dir, "f"))
	writeFiles(t, dir, map[string]string{"f": "bbbb"})
	os.Chtimes(filepath.Join(dir, "f"), st.ModTime(), st.ModTime())
	writeFiles(t, state, nil)
	d3 := digest()
	if d3 == d1 || strings.Contains(d3, "planted") {
		t.Error("content change missed")
	}
	writeFiles(t, dir, map[string]string{"f": "aaaa"})
	if digest() != d1 {
		t.Error("digest of the original content changed")
	}
}
