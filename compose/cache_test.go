package compose

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTree creates files (path → content) under dir.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// settle waits until files written just now are outside the racy window,
// so that the next load may be cached.
func settle() { time.Sleep(racyWindow + 10*time.Millisecond) }

// cacheProject is a project that reads every kind of input: an override
// file, .env, an env_file, an include with its env_file, an extends target
// reached through the include, a config and a secret file.
var cacheProject = map[string]string{
	"proj/compose.yaml": `
include:
  - path: inc/included.yaml
    env_file: inc/inc.env
services:
  web:
    image: "busybox:${TAG}"
    env_file: web.env
    label_file: web.labels
    configs: [conf]
    secrets: [tok]
configs:
  conf:
    file: ./app.conf
secrets:
  tok:
    file: ./token
`,
	"proj/.env":               "TAG=1\n",
	"proj/web.env":            "FROM_ENV_FILE=a\n",
	"proj/web.labels":         "role=a\n",
	"proj/alt.env":            "TAG=alt\n",
	"proj/app.conf":           "conf-v1\n",
	"proj/token":              "tok-v1\n",
	"proj/inc/inc.env":        "INC_TAG=1\n",
	"proj/inc/included.yaml":  "services:\n  worker:\n    extends:\n      file: base/base.yaml\n      service: base\n    image: \"busybox:${INC_TAG}\"\n",
	"proj/inc/base/base.yaml": "services:\n  base:\n    image: busybox\n    environment: [BASE=1]\n",
}

func cacheOptions(dir string) Options {
	return Options{
		Dir:      filepath.Join(dir, "proj"),
		Environ:  []string{"HOME=/nonexistent"},
		CacheDir: filepath.Join(dir, "cache"),
	}
}

func mustLoadDesired(t *testing.T, o Options) *Loaded {
	t.Helper()
	l, err := LoadDesired(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCacheInvalidation proves that changing each kind of input makes the
// next load miss the cache and see the change, and that an unchanged
// project is served from the cache.
func TestCacheInvalidation(t *testing.T) {
	type check func(t *testing.T, l *Loaded)
	env := func(svc, want string) check {
		return func(t *testing.T, l *Loaded) {
			if !slices.Contains(l.Desired.Services[svc].Container.Env, want) {
				t.Errorf("%s env %v lacks %s", svc, l.Desired.Services[svc].Container.Env, want)
			}
		}
	}
	image := func(svc, want string) check {
		return func(t *testing.T, l *Loaded) {
			if got := l.Desired.Services[svc].Image.Ref; got != want {
				t.Errorf("%s image %q, want %q", svc, got, want)
			}
		}
	}
	cases := []struct {
		name   string
		change func(t *testing.T, dir string, o *Options)
		check  check
	}{
		{"compose file, same size", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "proj/compose.yaml"), "busybox:${TAG}", "busyboy:${TAG}")
		}, image("web", "busyboy:1")},
		{"override file created", func(t *testing.T, dir string, o *Options) {
			writeTree(t, dir, map[string]string{"proj/compose.override.yaml": "services:\n  web:\n    image: override\n"})
		}, image("web", "override")},
		{"compose file renamed to a lower-priority name", func(t *testing.T, dir string, o *Options) {
			if err := os.Rename(filepath.Join(dir, "proj/compose.yaml"), filepath.Join(dir, "proj/docker-compose.yml")); err != nil {
				t.Fatal(err)
			}
		}, image("web", "busybox:1")},
		{".env", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "proj/.env"), "TAG=1", "TAG=2")
		}, image("web", "busybox:2")},
		{"env_file", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "proj/web.env"), "=a", "=b")
		}, env("web", "FROM_ENV_FILE=b")},
		{"label_file", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "proj/web.labels"), "=a", "=b")
		}, func(t *testing.T, l *Loaded) {
			if got := l.Desired.Services["web"].Container.Labels["role"]; got != "b" {
				t.Errorf("label role=%q, want b", got)
			}
		}},
		{"--env-file content", func(t *testing.T, dir string, o *Options) {
			// the entry under test is the one keyed with --env-file
			edit(t, filepath.Join(dir, "proj/alt.env"), "TAG=alt", "TAG=alt2")
		}, image("web", "busybox:alt2")},
		{"include target", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "proj/inc/included.yaml"), "${INC_TAG}", "inc-${INC_TAG}")
		}, image("worker", "busybox:inc-1")},
		{"include env_file", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "proj/inc/inc.env"), "INC_TAG=1", "INC_TAG=9")
		}, image("worker", "busybox:9")},
		{"extends target inside include", func(t *testing.T, dir string, o *Options) {
			edit(t, filepath.Join(dir, "proj/inc/base/base.yaml"), "BASE=1", "BASE=2")
		}, env("worker", "BASE=2")},
		{"environment", func(t *testing.T, dir string, o *Options) {
			o.Environ = append(o.Environ, "TAG=from-env")
		}, image("web", "busybox:from-env")},
		{"profiles option", func(t *testing.T, dir string, o *Options) {
			o.Profiles = []string{"other"}
		}, image("web", "busybox:1")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, cacheProject)
			o := cacheOptions(dir)
			if strings.HasPrefix(tc.name, "--env-file") {
				o.EnvFiles = []string{"alt.env"}
			}
			settle()
			if l := mustLoadDesired(t, o); l.Cached {
				t.Fatal("first load served from an empty cache")
			}
			first := mustLoadDesired(t, o)
			if !first.Cached {
				t.Fatal("unchanged project not served from the cache")
			}
			tc.change(t, dir, &o)
			l := mustLoadDesired(t, o)
			if l.Cached {
				t.Fatalf("cache served after %s changed", tc.name)
			}
			tc.check(t, l)
		})
	}
}

// TestCacheContentChangesMoveHash: a config or secret file whose content
// changes misses the cache and moves the service's config hash.
func TestCacheContentChangesMoveHash(t *testing.T) {
	for _, file := range []string{"proj/app.conf", "proj/token"} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, cacheProject)
			o := cacheOptions(dir)
			settle()
			before := mustLoadDesired(t, o)
			if !mustLoadDesired(t, o).Cached {
				t.Fatal("not cached")
			}
			edit(t, filepath.Join(dir, file), "-v1", "-v2")
			after := mustLoadDesired(t, o)
			if after.Cached {
				t.Fatal("cache served after a content change")
			}
			if before.Desired.Services["web"].ConfigHash == after.Desired.Services["web"].ConfigHash {
				t.Error("config hash did not move with the content")
			}
		})
	}
}

// TestCacheTouchKeepsEntry: times moving without a content change is
// settled by the content hash and keeps the entry.
func TestCacheTouchKeepsEntry(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, cacheProject)
	o := cacheOptions(dir)
	settle()
	mustLoadDesired(t, o)
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "proj/compose.yaml"), future, future); err != nil {
		t.Fatal(err)
	}
	if !mustLoadDesired(t, o).Cached {
		t.Error("touching a file dropped the cache entry")
	}
}

// TestCacheRacyNotWritten: a file changed during (or just before) a load
// might have been read in its old state, so the result is not cached.
func TestCacheRacyNotWritten(t *testing.T) {
	old := racyWindow
	racyWindow = time.Hour
	t.Cleanup(func() { racyWindow = old })
	dir := t.TempDir()
	writeTree(t, dir, cacheProject)
	o := cacheOptions(dir)
	mustLoadDesired(t, o)
	if mustLoadDesired(t, o).Cached {
		t.Error("a load racing a file change was cached")
	}
}

// TestCacheDiscoveryUpwards: a project found in a parent directory is
// invalidated by a compose file appearing in the directory in between.
func TestCacheDiscoveryUpwards(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"top/compose.yaml":    "services:\n  a:\n    image: top\n",
		"top/mid/sub/.keep":   "",
		"top/mid/.keep":       "",
		"top/mid/sub/x/.keep": "",
	})
	o := Options{Dir: filepath.Join(dir, "top/mid/sub"), Environ: []string{}, CacheDir: filepath.Join(dir, "cache")}
	settle()
	if l := mustLoadDesired(t, o); l.Desired.Services["a"].Image.Ref != "top" {
		t.Fatalf("image %q", l.Desired.Services["a"].Image.Ref)
	}
	if !mustLoadDesired(t, o).Cached {
		t.Fatal("not cached")
	}
	writeTree(t, dir, map[string]string{"top/mid/docker-compose.yml": "services:\n  a:\n    image: mid\n"})
	l := mustLoadDesired(t, o)
	if l.Cached || l.Desired.Services["a"].Image.Ref != "mid" {
		t.Errorf("cached=%v image=%q, want a fresh load of the nearer file", l.Cached, l.Desired.Services["a"].Image.Ref)
	}
	settle()
	mustLoadDesired(t, o)
	// compose.yaml takes precedence over docker-compose.yml in one directory
	writeTree(t, dir, map[string]string{"top/mid/compose.yaml": "services:\n  a:\n    image: mid2\n"})
	l = mustLoadDesired(t, o)
	if l.Cached || l.Desired.Services["a"].Image.Ref != "mid2" {
		t.Errorf("cached=%v image=%q, want the higher-priority file", l.Cached, l.Desired.Services["a"].Image.Ref)
	}
}

// TestCacheWarningsKept: a cached load still reports unimplemented keys.
func TestCacheWarningsKept(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"proj/compose.yaml": "services:\n  a:\n    image: x\n    logging: {driver: none}\n"})
	o := cacheOptions(dir)
	settle()
	mustLoadDesired(t, o)
	l := mustLoadDesired(t, o)
	if !l.Cached || !slices.Equal(l.Unimplemented, []string{"services.a.logging"}) {
		t.Errorf("cached=%v unimplemented=%v", l.Cached, l.Unimplemented)
	}
}

// TestCacheBypass: no CacheDir means no cache, and an unwritable cache
// directory only costs time.
func TestCacheBypass(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, cacheProject)
	o := cacheOptions(dir)
	o.CacheDir = ""
	settle()
	mustLoadDesired(t, o)
	if mustLoadDesired(t, o).Cached {
		t.Error("cached without a cache directory")
	}
	blocker := filepath.Join(dir, "file")
	writeTree(t, dir, map[string]string{"file": ""})
	o.CacheDir = filepath.Join(blocker, "cache")
	if _, err := LoadDesired(context.Background(), o); err != nil {
		t.Errorf("unusable cache directory failed the load: %v", err)
	}
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCacheRoundTrip: what the cache serves is what a fresh load computes,
// x- extensions of any shape included.
func TestCacheRoundTrip(t *testing.T) {
	dir := t.TempDir()
	files := maps.Clone(cacheProject)
	files["proj/compose.yaml"] = strings.Replace(files["proj/compose.yaml"], "  web:\n", "  web:\n    x-meta: {a: [1, two, {b: true}], c: 1.5}\n    ports: [\"8080:80\"]\n    healthcheck: {test: [CMD, \"true\"], interval: 5s}\n", 1)
	writeTree(t, dir, files)
	o := cacheOptions(dir)
	settle()
	fresh := mustLoadDesired(t, o)
	cached := mustLoadDesired(t, o)
	if !cached.Cached {
		t.Fatal("not cached")
	}
	a, _ := json.Marshal(fresh.Desired)
	b, _ := json.Marshal(cached.Desired)
	if string(a) != string(b) {
		t.Errorf("cached desired state differs from the fresh one:\n%s", lineDiff(string(a), string(b)))
	}
}

// TestCacheEnvironmentDependencies: only variables an input file can name
// invalidate an entry; any other variable (a terminal's, hyperfine's
// iteration counter) leaves it alone.
func TestCacheEnvironmentDependencies(t *testing.T) {
	dir := t.TempDir()
	files := maps.Clone(cacheProject)
	files["proj/compose.yaml"] = strings.Replace(files["proj/compose.yaml"], "    env_file: web.env\n", "    env_file: web.env\n    environment: [PASSTHRU, my.dotted]\n", 1)
	files["proj/web.env"] = "FROM_ENV_FILE=${ONLY_IN_ENV_FILE:-a}\n"
	writeTree(t, dir, files)
	base := cacheOptions(dir)
	base.Environ = append(base.Environ, "UNRELATED=1", "ONLY_IN_ENV_FILE=a")
	settle()
	mustLoadDesired(t, base)
	cases := []struct {
		name   string
		env    []string
		cached bool
	}{
		{"unchanged", nil, true},
		{"unrelated variable added", []string{"HYPERFINE_ITERATION=7"}, true},
		{"pass-through variable set", []string{"PASSTHRU=x"}, false},
		{"dotted pass-through variable set", []string{"my.dotted=x"}, false},
		{"interpolated variable in env_file changed", []string{"ONLY_IN_ENV_FILE=b"}, false},
		{"COMPOSE_ variable set", []string{"COMPOSE_PROFILES=x"}, false},
		{"HOME changed", []string{"HOME=/elsewhere"}, false},
	}
	for _, c := range cases {
		mustLoadDesired(t, base) // every case compares against the base entry
		o := base
		o.Environ = append(slices.Clone(base.Environ), c.env...)
		if c.name == "interpolated variable in env_file changed" {
			o.Environ = slices.DeleteFunc(o.Environ, func(kv string) bool { return kv == "ONLY_IN_ENV_FILE=a" })
		}
		if c.name == "HOME changed" {
			o.Environ = slices.DeleteFunc(o.Environ, func(kv string) bool { return strings.HasPrefix(kv, "HOME=") })
		}
		if l := mustLoadDesired(t, o); l.Cached != c.cached {
			t.Errorf("%s: cached=%v, want %v", c.name, l.Cached, c.cached)
		}
	}
	o := base
	o.Environ = append(slices.Clone(base.Environ), "PASSTHRU=x")
	if l := mustLoadDesired(t, o); !slices.Contains(l.Desired.Services["web"].Container.Env, "PASSTHRU=x") {
		t.Errorf("pass-through variable missing from %v", l.Desired.Services["web"].Container.Env)
	}
}

// TestRemoveCached: the entries of one project go, another project's stay.
func TestRemoveCached(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, cacheProject)
	writeTree(t, dir, map[string]string{"other/compose.yaml": "services:\n  a:\n    image: busybox\n"})
	settle()
	o := cacheOptions(dir)
	mustLoadDesired(t, o)
	o2 := o
	// A second entry of the same project: another option set.
	o2.EnvFiles = []string{filepath.Join(dir, "proj", "alt.env")}
	mustLoadDesired(t, o2)
	other := o
	other.Dir, other.Files, other.ProjectName = filepath.Join(dir, "other"), nil, "other"
	mustLoadDesired(t, other)
	entries := func() int {
		m, _ := filepath.Glob(filepath.Join(o.CacheDir, "*"+entrySuffix))
		return len(m)
	}
	if n := entries(); n != 3 {
		t.Fatalf("%d cache entries, want 3", n)
	}
	project := mustLoadDesired(t, o).Desired.Project
	if err := RemoveCached(o.CacheDir, project); err != nil {
		t.Fatal(err)
	}
	if n := entries(); n != 1 {
		t.Errorf("%d cache entries left, want 1 (the other project's)", n)
	}
	if !mustLoadDesired(t, other).Cached {
		t.Error("the other project's entry went too")
	}
	if err := RemoveCached(filepath.Join(dir, "missing"), project); err != nil {
		t.Errorf("missing cache directory: %v", err)
	}
}

// TestCacheOnStale: a load that finds its entry out of date tells OnStale
// the project the entry names before it loads the files again; a load
// served from the cache, or with no entry, does not call it.
func TestCacheOnStale(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"proj/compose.yaml": "name: before\nservices:\n  web:\n    image: busybox\n"})
	var got []string
	o := cacheOptions(dir)
	o.OnStale = func(project string) { got = append(got, project) }
	settle()
	mustLoadDesired(t, o) // no entry: written
	if l := mustLoadDesired(t, o); !l.Cached || len(got) != 0 {
		t.Fatalf("cached %v, OnStale called with %v", l.Cached, got)
	}
	writeTree(t, dir, map[string]string{"proj/compose.yaml": "name: after\nservices:\n  web:\n    image: busybox:1\n"})
	if l := mustLoadDesired(t, o); l.Cached || l.Desired.Project != "after" || len(got) != 1 || got[0] != "before" {
		t.Fatalf("after an edit: cached %v, project %s; OnStale called with %v, want [before]", l.Cached, l.Desired.Project, got)
	}
}
