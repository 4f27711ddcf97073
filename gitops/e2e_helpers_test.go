package gitops

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/e2e/berthtest"
)

func TestMain(m *testing.M) { berthtest.Main(m) }

// machine is one test's berth state (berthtest.Machine): its own roots,
// the busybox image, and a project name nobody else uses.
type machine struct {
	*berthtest.Machine
	t             testing.TB
	bin           string
	root, runRoot string
	project       string
}

func newMachine(t testing.TB, suffix string) *machine {
	t.Helper()
	bm := berthtest.New(t, berthtest.Options{RunPrefix: "berth-gitops-", Image: "localhost/busybox:demo"})
	m := &machine{Machine: bm, t: t, bin: bm.Bin, root: bm.Root, runRoot: bm.Run,
		project: fmt.Sprintf("gs%d%s", os.Getpid()%100000, suffix)}
	// Registered after berthtest's sweep, so it runs before it.
	t.Cleanup(func() {
		out, err := m.berth("down", "-p", m.project, "-v")
		if err != nil {
			t.Logf("down: %v\n%s", err, out)
		}
	})
	return m
}

// command is berth ARGS naming the machine's roots with --root and
// --run-root (the controller's own spelling).
func (m *machine) command(args ...string) *exec.Cmd {
	cmd := exec.Command(m.bin, append([]string{"--root", m.root, "--run-root", m.runRoot}, args...)...)
	cmd.Dir = m.root
	return cmd
}

func (m *machine) berth(args ...string) (string, error) {
	out, err := m.command(args...).CombinedOutput()
	return string(out), err
}

// controller is a running `berth sync`.
type controller struct {
	cmd *exec.Cmd
	out *bytes.Buffer
	mu  *sync.Mutex
}

type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (b lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (m *machine) startSync(args ...string) *controller {
	m.t.Helper()
	c := &controller{out: &bytes.Buffer{}, mu: &sync.Mutex{}}
	c.cmd = m.command(append([]string{"sync"}, args...)...)
	c.cmd.Stdout = lockedBuffer{c.mu, c.out}
	c.cmd.Stderr = c.cmd.Stdout
	if err := c.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() {
		c.stop(syscall.SIGTERM)
		if strings.Contains(c.output(), "DATA RACE") {
			m.t.Errorf("race in berth sync:\n%s", c.output())
		}
	})
	return c
}

func (c *controller) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *controller) stop(sig syscall.Signal) {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func (m *machine) status() *Status {
	m.t.Helper()
	out, err := m.command("sync", "status", "--format", "json").Output()
	if err != nil {
		return nil
	}
	var all []*Status
	if json.Unmarshal(out, &all) != nil || len(all) != 1 {
		return nil
	}
	return all[0]
}

// waitStatus polls berth sync status until ok holds.
func (m *machine) waitStatus(c *controller, what string, ok func(*Status) bool) *Status {
	m.t.Helper()
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	var s *Status
	for time.Now().Before(deadline) {
		if s = m.status(); s != nil && ok(s) {
			m.t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	m.t.Fatalf("timed out waiting for %s; status:\n%s\ncontroller output:\n%s", what, b, c.output())
	return nil
}

// ids returns the ids of the service's containers (stopped ones too).
func (m *machine) ids(service string) string {
	m.t.Helper()
	out, err := m.berth("ps", "-p", m.project, "-a", "-q", service)
	if err != nil {
		m.t.Fatalf("ps: %v\n%s", err, out)
	}
	return strings.Join(strings.Fields(out), ",")
}

func healthOf(s *Status, service string) string {
	for _, svc := range s.Services {
		if svc.Name == service {
			return svc.Health
		}
	}
	return ""
}

// project is the test's compose file: a web server with a healthcheck
// (good or never passing) serving a bind-mounted directory, and a worker
// whose environment the tests change.
func project(name, worker string, healthy bool) string {
	health := "timeout 5 wget -q -O /dev/null http://127.0.0.1:8081/ || exit 1"
	if !healthy {
		health = "exit 1"
	}
	return fmt.Sprintf(`name: %s
x-base: &base
  image: localhost/busybox:demo
  pull_policy: never
  init: true
  stop_grace_period: 1s
services:
  web:
    <<: *base
    command: ["httpd", "-f", "-p", "8081", "-h", "/www"]
    volumes: ["./www:/www:ro"]
    healthcheck:
      test: ["CMD-SHELL", %q]
      interval: 300ms
      retries: 3
  worker:
    <<: *base
    command: ["sleep", "1000000"]
    environment: {V: %q}
`, name, health, worker)
}

// gitHTTP serves the bare repositories under dir with git http-backend
// (Debian's git), pushes included, on 127.0.0.1.
func gitHTTP(t testing.TB, dir string) string {
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skip("git http-backend is not installed")
	}
	mux := http.NewServeMux()
	mux.Handle("/git/", &cgi.Handler{Path: backend, Root: "/git",
		Env: []string{"GIT_PROJECT_ROOT=" + dir, "GIT_HTTP_EXPORT_ALL=1"}})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/git"
}

// deliver posts a signed push event to the controller's webhook.
func deliver(t testing.TB, url string, secret []byte, header string) int {
	t.Helper()
	body := []byte(`{"ref":"refs/heads/main"}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	sig := hex.EncodeToString(mac.Sum(nil))
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ { // the listener comes up with the controller
		req, _ := http.NewRequestWithContext(context.Background(), "POST", url, bytes.NewReader(body))
		switch header {
		case "github":
			req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
			req.Header.Set("X-GitHub-Event", "push")
		case "gitea":
			req.Header.Set("X-Gitea-Signature", sig)
		}
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// env returns the recorded spec of the service's container (the native
// driver's record), which holds its environment as KEY=VALUE strings.
func (m *machine) env(service string) string {
	m.t.Helper()
	id := m.ids(service)
	if id == "" || strings.Contains(id, ",") {
		m.t.Fatalf("%s: containers %q", service, id)
	}
	match, _ := filepath.Glob(filepath.Join(m.root, "containers", id+"*", "record.json"))
	if len(match) != 1 {
		m.t.Fatalf("record of %s: %v", id, match)
	}
	b, err := os.ReadFile(match[0])
	if err != nil {
		m.t.Fatal(err)
	}
	return string(b)
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
