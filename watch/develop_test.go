package watch

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

func testRules(t *testing.T, dir string, triggers map[string][]types.Trigger) []*rule {
	t.Helper()
	p := &types.Project{WorkingDir: dir, Services: types.Services{}}
	for name, ts := range triggers {
		s := types.ServiceConfig{Name: name, Develop: &types.DevelopConfig{Watch: ts}}
		s.Build = &types.BuildConfig{Context: "."}
		p.Services[name] = s
	}
	rules, err := rulesOf(p)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func TestRulesMatchAndAssign(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("src/node_modules\n**/*.secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := testRules(t, dir, map[string][]types.Trigger{
		"web": {
			{Path: "./src", Target: "/app/src", Action: types.WatchActionSync, Ignore: []string{"*.log", "tmp/"}},
			{Path: "./src/config", Target: "/etc/app", Action: types.WatchActionSyncRestart},
			{Path: "./package.json", Action: types.WatchActionRebuild},
			{Path: "./static", Target: "/www", Action: types.WatchActionSync, Include: []string{"*.html"}},
		},
		"worker": {
			{Path: "./src", Target: "/w", Action: types.WatchActionSyncExec, Exec: types.ServiceHook{Command: []string{"kill", "-HUP", "1"}}},
		},
	})
	p := func(rel string) string { return filepath.Join(dir, rel) }
	cases := []struct {
		path  string
		want  []string // services that take it
		which int      // web's rule index expected when web takes it
	}{
		{"src/main.go", []string{"web", "worker"}, 0},
		{"src/config/app.ini", []string{"web", "worker"}, 0}, // first matching rule wins, in file order
		{"src/debug.log", []string{"worker"}, -1},            // ignored by web's rule only
		{"src/tmp/x", []string{"worker"}, -1},
		{"src/.main.go.swp", nil, -1}, // editor temp files: nobody
		{"src/main.go~", nil, -1},
		{"src/.git/HEAD", nil, -1},
		{"src/node_modules/a.js", nil, -1}, // .dockerignore of the build context
		{"src/key.secret", nil, -1},
		{"package.json", []string{"web"}, 2},
		{"static/index.html", []string{"web"}, 3},
		{"static/style.css", nil, -1}, // not included
		{"other/file", nil, -1},
	}
	for _, c := range cases {
		var got []string
		webRule := -1
		for _, r := range rules {
			if r.matches(p(c.path)) && !slices.Contains(got, r.Service) {
				got = append(got, r.Service)
				if r.Service == "web" {
					webRule = r.Index
				}
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: taken by %v, want %v", c.path, got, c.want)
		}
		if webRule != c.which {
			t.Errorf("%s: web rule %d, want %d", c.path, webRule, c.which)
		}
	}

	work := assign(rules, []string{p("src/main.go"), p("src/gone.go"), p("static/index.html")})
	if len(work) != 2 || work[0].Service != "web" || work[1].Service != "worker" {
		t.Fatalf("work %+v", work)
	}
	web := work[0]
	if web.Rebuild || web.Restart || len(web.Sync) != 2 {
		t.Fatalf("web work %+v", web)
	}
	for r, paths := range web.Sync {
		if r.Index == 0 && !slices.Equal(paths, []string{p("src/main.go"), p("src/gone.go")}) {
			t.Fatalf("sync rule 0 paths %v", paths)
		}
		if r.Index == 0 && r.targetOf(p("src/main.go")) != "/app/src/main.go" {
			t.Fatalf("target %s", r.targetOf(p("src/main.go")))
		}
	}
	if w := work[1]; len(w.Exec) != 1 || w.Restart {
		t.Fatalf("worker work %+v", w)
	}

	// a rebuild supersedes the service's syncs and restarts
	work = assign(rules, []string{p("src/main.go"), p("src/config/app.ini"), p("package.json")})
	if w := work[0]; !w.Rebuild || w.Restart || len(w.Sync) != 0 {
		t.Fatalf("web with a rebuild %+v", w)
	}
}

func TestRuleValidation(t *testing.T) {
	dir := t.TempDir()
	bad := []types.Trigger{
		{Path: "./src", Action: types.WatchActionSync},                           // no target
		{Path: "./src", Target: "rel", Action: types.WatchActionSync},            // relative target
		{Path: "./src", Target: "/x", Action: "teleport"},                        // unknown action
		{Path: "", Action: types.WatchActionRestart},                             // no path
		{Path: "./src", Target: "/x", Action: types.WatchActionSyncExec},         // no command
		{Path: "./src", Action: types.WatchActionRestart, Ignore: []string{"["}}, // bad pattern
	}
	for i, tr := range bad {
		p := &types.Project{WorkingDir: dir, Services: types.Services{"s": {Name: "s", Develop: &types.DevelopConfig{Watch: []types.Trigger{tr}}}}}
		if _, err := rulesOf(p); err == nil {
			t.Errorf("trigger %d (%+v) accepted", i, tr)
		}
	}
}

func TestIgnoredNames(t *testing.T) {
	for _, n := range []string{".git", "4913", "main.go~", ".main.go.swp", ".x.swx", ".#main.go", "#main.go#", "a___jb_tmp___"} {
		if !ignoredName(n) {
			t.Errorf("%s not ignored", n)
		}
	}
	for _, n := range []string{"main.go", "swp", ".env", "#notes", "git"} {
		if ignoredName(n) {
			t.Errorf("%s ignored", n)
		}
	}
}
