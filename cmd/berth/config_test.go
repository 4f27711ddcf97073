package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/compose"
)

// berth is the binary under test, built once per test run (builtBerth in
// cli_harness_test.go), as a user would run it.
func berth(t *testing.T) string {
	t.Helper()
	bin, err := builtBerth()
	if err != nil {
		t.Fatalf("go build ./cmd/berth: %v", err)
	}
	return bin
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs berth in dir with a clean environment and stdin.
func run(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(berth(t), args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "BERTH_ROOT=" + t.TempDir()}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "compose", "testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigMalformedNamesFileAndLine(t *testing.T) {
	dir := fixture(t, "malformed-yaml")
	r := run(t, dir, "", "config")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, filepath.Join(dir, "compose.yaml")) || !strings.Contains(r.stderr, "line 3") {
		t.Errorf("stderr %q does not name the file and line", r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "berth: ") {
		t.Errorf("stderr %q lacks the berth: prefix", r.stderr)
	}
}

func TestConfigInvalidFieldNamesPath(t *testing.T) {
	r := run(t, fixture(t, "invalid-field"), "", "config", "-q")
	if r.code != 1 || !strings.Contains(r.stderr, "services.app.restart") || !strings.Contains(r.stderr, "compose.yaml") {
		t.Errorf("exit %d, stderr %q: want 1 naming the file and services.app.restart", r.code, r.stderr)
	}
}

func TestConfigNoFile(t *testing.T) {
	r := run(t, t.TempDir(), "", "config")
	if r.code != 1 || !strings.Contains(r.stderr, "no configuration file provided") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestConfigListings(t *testing.T) {
	cases := []struct {
		fixture string
		args    []string
		want    string
	}{
		{"build", []string{"--services"}, "api\ndb\ninline\nmigrate\n"},
		{"build", []string{"--profiles"}, "cache\n"},
		{"build", []string{"--images"}, "build-api\npostgres:17\nbuild-inline\nregistry.test/migrate@sha256:0000000000000000000000000000000000000000000000000000000000000000\n"},
		{"storage", []string{"--volumes"}, "data\next\nnamed-explicit\n"},
		{"storage", []string{"--networks"}, "back\nfront\n"},
		{"profiles", []string{"--profile", "tools", "--services"}, "app\ntools\n"},
		{"no-interpolate", []string{"--no-interpolate", "--images"}, "busybox:${TAG:-x}\n"},
		{"name-file", []string{"-p", "Flag_Name", "--images"}, ""},
		{"name-file", []string{"-p", "flagname", "--format", "json", "--services"}, "app\n"},
	}
	for _, c := range cases {
		r := run(t, fixture(t, c.fixture), "", append([]string{"config"}, c.args...)...)
		if c.want == "" {
			if r.code != 1 {
				t.Errorf("%s %v: exit %d, want 1 (invalid project name)", c.fixture, c.args, r.code)
			}
			continue
		}
		if r.code != 0 || r.stdout != c.want {
			t.Errorf("%s %v: exit %d stdout %q, want %q (stderr %q)", c.fixture, c.args, r.code, r.stdout, c.want, r.stderr)
		}
	}
}

// TestConfigHashMatchesLoader: berth config --hash prints the hash the
// reconciler will label containers with.
func TestConfigHashMatchesLoader(t *testing.T) {
	dir := fixture(t, "storage")
	r := run(t, dir, "", "config", "--hash", "*")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	p, err := compose.Load(context.Background(), compose.Options{Dir: dir, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Desired()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, n := range d.ServiceNames() {
		want.WriteString(n + " " + d.Services[n].ConfigHash + "\n")
	}
	if r.stdout != want.String() {
		t.Errorf("--hash printed\n%s\nwant\n%s", r.stdout, want.String())
	}
	one := run(t, dir, "", "config", "--hash", "sidecar")
	if one.stdout != "sidecar "+d.Services["sidecar"].ConfigHash+"\n" {
		t.Errorf("--hash sidecar printed %q", one.stdout)
	}
	if bad := run(t, dir, "", "config", "--hash", "nope"); bad.code != 1 {
		t.Errorf("--hash of an unknown service: exit %d", bad.code)
	}
}

func TestConfigStdinAndFormats(t *testing.T) {
	dir := t.TempDir()
	yaml := "services:\n  app:\n    image: busybox:${TAG:-1}\n"
	r := run(t, dir, yaml, "config", "-f", "-", "-p", "stdin", "--format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var v struct {
		Name     string
		Services map[string]struct{ Image string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("--format json: %v\n%s", err, r.stdout)
	}
	if v.Name != "stdin" || v.Services["app"].Image != "busybox:1" {
		t.Errorf("got %+v", v)
	}
	out := filepath.Join(dir, "out.yaml")
	r = run(t, dir, yaml, "config", "-f", "-", "-o", out)
	b, err := os.ReadFile(out)
	if r.code != 0 || err != nil || !strings.Contains(string(b), "image: busybox:1") || r.stdout != "" {
		t.Errorf("-o: exit %d, err %v, file %q, stdout %q", r.code, err, b, r.stdout)
	}
	if q := run(t, dir, yaml, "config", "-f", "-", "-q"); q.code != 0 || q.stdout != "" {
		t.Errorf("-q: exit %d stdout %q", q.code, q.stdout)
	}
	if f := run(t, dir, yaml, "config", "-f", "-", "--format", "toml"); f.code != 1 {
		t.Errorf("--format toml: exit %d", f.code)
	}
}

// TestConfigWarnsOnce: unimplemented keys are listed in one stderr line.
func TestConfigWarnsOnce(t *testing.T) {
	r := run(t, fixture(t, "unimplemented"), "", "config", "-q")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	want := "berth: warning: not implemented yet, ignored: services.app.cgroup_parent, services.app.deploy.placement, services.app.logging, services.other.logging"
	if r.code != 0 || len(lines) != 1 || lines[0] != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exactly:\n%s", r.code, r.stderr, want)
	}
}
