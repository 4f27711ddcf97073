package gitops

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExampleGitops follows examples/gitops/README.md: the example's
// repository committed to a bare repository, `berth sync` on its
// apps/hello path; the page answers on the published port; a change of
// the env file the project names recreates clock only; a commit to docs/
// changes nothing.
func TestExampleGitops(t *testing.T) {
	m := newMachine(t, "x")
	m.project = "gitops-hello" // the example's name: down -v in the cleanup
	u := newUpstream(t)
	files := map[string]string{}
	src := filepath.Join("..", "examples", "gitops", "repo")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(src, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	first := u.commit("first revision", files)
	ctl := m.startSync(u.bare, "--ref", "main", "--path", "apps/hello", "--interval", "1s")
	m.waitStatus(ctl, "first revision applied", func(s *Status) bool {
		return s.Applied == first && s.State == Synced && healthOf(s, "web") == "healthy"
	})
	if page := get(t, "http://127.0.0.1:8088/"); !strings.Contains(page, "<") {
		t.Fatalf("the example's page: %q", page)
	}
	web, clock := m.ids("web"), m.ids("clock")
	if !strings.Contains(m.env("clock"), "GREETING=hello from revision one") {
		t.Fatalf("clock lacks the env file's greeting")
	}

	env := strings.Replace(files["config/hello.env"], "one", "two", 1)
	second := u.commit("greeting two", map[string]string{"config/hello.env": env})
	m.waitStatus(ctl, "env change applied", func(s *Status) bool {
		return s.Applied == second && s.State == Synced && healthOf(s, "clock") == "running"
	})
	if m.ids("web") != web {
		t.Errorf("web was recreated by a change of clock's env file")
	}
	if m.ids("clock") == clock || !strings.Contains(m.env("clock"), "GREETING=hello from revision two") {
		t.Errorf("clock was not recreated with the new greeting")
	}

	web, clock = m.ids("web"), m.ids("clock")
	third := u.commit("notes", map[string]string{"docs/notes.md": "more notes\n"})
	m.waitStatus(ctl, "unrelated commit seen", func(s *Status) bool { return s.Wanted == third })
	time.Sleep(2 * time.Second) // a pass or two of the controller
	if s := m.status(); s == nil || s.Applied != second || s.State != Synced {
		t.Errorf("a commit to docs/ was applied: %+v", s)
	}
	if m.ids("web") != web || m.ids("clock") != clock {
		t.Errorf("a commit to docs/ recreated containers")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
