package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/e2e/berthtest"
)

// machine is a berth state root of a test's own (berthtest.Machine), on
// the real machine's network: berth runs with a clean environment and the
// machine's image is a minimal busybox one with a web page.
type machine struct {
	*berthtest.Machine
	t        *testing.T
	dir      string // the project directory
	root     string
	runRoot  string
	extraEnv []string
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	bm := berthtest.New(t, berthtest.Options{RunPrefix: "berth-cmd-test-"})
	m := &machine{Machine: bm, t: t, dir: t.TempDir(), root: bm.Root, runRoot: bm.Run}
	// Registered after berthtest's sweep, so it runs before it.
	t.Cleanup(func() { m.berth("down", "-v", "-t", "0") })
	m.importBusybox("localhost/busybox:test")
	return m
}

func (m *machine) berth(args ...string) result {
	m.t.Helper()
	cmd := exec.Command(m.Bin, args...)
	cmd.Dir = m.dir
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + m.dir,
		"BERTH_ROOT=" + m.root, "BERTH_RUN_ROOT=" + m.runRoot}, m.extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		m.t.Fatal(err)
	}
	return r
}

// must runs berth and fails the test unless it exits 0.
func (m *machine) must(args ...string) string {
	m.t.Helper()
	r := m.berth(args...)
	if r.code != 0 {
		m.t.Fatalf("berth %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (m *machine) importBusybox(ref string) {
	m.t.Helper()
	rootfs := m.t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "www"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	bb, _ := exec.LookPath("busybox")
	b, err := os.ReadFile(bb)
	if err != nil {
		m.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755)
	for _, a := range []string{"sh", "sleep", "httpd", "echo", "cat", "wget", "true", "false", "stat", "mkdir", "ln", "rm", "touch"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "www", "index.html"), []byte("hello from web\n"), 0o644)
	m.must("image", "import", rootfs, ref)
}

func (m *machine) writeCompose(content string) {
	m.t.Helper()
	if err := os.WriteFile(filepath.Join(m.dir, "compose.yaml"), []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

const twoServices = `
name: cmdtest
services:
  web:
    image: localhost/busybox:test
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    init: true
    ports: ["127.0.0.1::8080"]
  worker:
    image: localhost/busybox:test
    command: ["sh", "-c", "echo worker started; exec sleep 3600"]
    init: true
`

func TestProjectCommands(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(twoServices)
	m.must("up", "-d")

	// ps --format json carries compose's field names, one object a line.
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(m.must("ps", "--format", "json")), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("ps json line %q: %v", line, err)
		}
		for _, k := range []string{"ID", "Name", "Image", "Command", "Project", "Service", "State", "Status", "Publishers"} {
			if _, ok := e[k]; !ok {
				t.Errorf("ps json lacks %s: %v", k, e)
			}
		}
		if e["State"] != "running" {
			t.Errorf("%v not running", e["Name"])
		}
		names = append(names, e["Name"].(string))
	}
	if strings.Join(names, ",") != "cmdtest-web-1,cmdtest-worker-1" {
		t.Fatalf("ps names: %v", names)
	}

	if out := m.must("ls"); !strings.Contains(out, "cmdtest") || !strings.Contains(out, "running(2)") {
		t.Errorf("ls: %q", out)
	}

	// port prints the random host port, and it answers.
	addr := strings.TrimSpace(m.must("port", "web", "8080"))
	if !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Fatalf("port: %q", addr)
	}
	body := httpGet(t, "http://"+addr+"/")
	if body != "hello from web\n" {
		t.Errorf("GET through the published port: %q", body)
	}
	if r := m.berth("port", "web", "9999"); r.code == 0 {
		t.Error("port of an unpublished port succeeded")
	}

	if out := m.must("top", "worker"); !strings.Contains(out, "sleep 3600") {
		t.Errorf("top worker: %q", out)
	}
	var row map[string]string
	stats := strings.TrimSpace(m.must("stats", "--no-stream", "--format", "json", "worker"))
	if err := json.Unmarshal([]byte(stats), &row); err != nil || row["Name"] != "cmdtest-worker-1" || row["PIDs"] == "0" {
		t.Errorf("stats: %q %v", stats, err)
	}
	if out := m.must("logs", "--no-log-prefix", "worker"); !strings.Contains(out, "worker started") {
		t.Errorf("logs: %q", out)
	}

	m.must("stop", "-t", "2", "worker")
	if out := m.must("ps", "-a", "--status", "exited", "-q"); len(strings.Fields(out)) != 1 {
		t.Errorf("one exited container expected after stop: %q", out)
	}
	m.must("start", "worker")
	m.must("kill", "-s", "KILL", "worker")
	if out := m.must("wait", "worker"); strings.TrimSpace(out) != "137" {
		t.Errorf("wait after SIGKILL printed %q, want 137", out)
	}
	m.must("down", "-v", "-t", "0")
	if out := m.must("ls", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("projects left after down: %q", out)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	var last error
	for i := 0; i < 20; i++ {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}
