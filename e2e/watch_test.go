package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// watchProc is a running `berth watch` and what it printed.
type watchProc struct {
	t    *testing.T
	mu   sync.Mutex
	out  bytes.Buffer
	seen int           // output before this offset was matched already
	done chan struct{} // closed when the process exited
	err  error         // its exit, valid once done is closed
	stop func()
	pid  int
}

// exit stops berth watch with SIGINT and returns how it ended.
func (w *watchProc) exit() error {
	w.stop()
	<-w.done
	return w.err
}

func (w *watchProc) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(b)
}

// expect waits for the output after the last match to contain every one
// of subs on one line, and returns that line.
func (w *watchProc) expect(d time.Duration, subs ...string) string {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for {
		w.mu.Lock()
		rest := w.out.String()[w.seen:]
		off := 0
		for _, line := range strings.SplitAfter(rest, "\n") {
			off += len(line)
			if !strings.HasSuffix(line, "\n") {
				break
			}
			if containsAll(line, subs) {
				w.seen += off
				w.mu.Unlock()
				return line
			}
		}
		full := w.out.String()
		w.mu.Unlock()
		if time.Now().After(deadline) {
			w.t.Fatalf("berth watch did not print %q within %v; output:\n%s", subs, d, full)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func (p *project) watch(args ...string) *watchProc {
	p.m.t.Helper()
	return p.controller(append([]string{"watch"}, args...)...)
}

// controller starts a long-running berth command (watch, up --watch).
func (p *project) controller(args ...string) *watchProc {
	p.m.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchProc{t: p.m.t, done: make(chan struct{})}
	cmd := p.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Start(); err != nil {
		p.m.t.Fatal(err)
	}
	w.pid = cmd.Process.Pid
	go func() {
		err := cmd.Wait()
		// Wait reports the cancellation itself even when SIGINT made
		// berth exit cleanly: the exit status is what counts
		if err != nil && cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 0 {
			err = nil
		}
		w.err = err
		close(w.done)
	}()
	w.stop = cancel
	p.m.t.Cleanup(func() {
		cancel()
		<-w.done
		if p.m.t.Failed() {
			p.m.t.Logf("berth watch output:\n%s", w.out.String())
		}
	})
	return w
}

// inContainer reads a file through the container's root, as its processes
// see it ("" when it does not exist).
func (m *machine) inContainer(id, path string) string {
	s, err := m.runtimeState(id)
	if err != nil || s.Pid == 0 {
		return ""
	}
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(s.Pid), "root", path))
	if err != nil {
		return ""
	}
	return string(b)
}

const watchCompose = `
x-base: &base
  image: localhost/busybox:e2e
  pull_policy: never
  init: true
  stop_grace_period: 1s
services:
  a:
    <<: *base
    command: ["sleep", "100000"]
    environment:
      X: "${X_VALUE}"
    develop:
      watch:
        - path: ./src
          target: /app
          action: sync
          ignore: ["*.log"]
  b:
    <<: *base
    command: ["sleep", "100000"]
    develop:
      watch:
        - path: ./hooks
          target: /hooks
          action: sync+exec
          exec:
            command: ["sh", "-c", "cat /hooks/h > /ran"]
  img:
    build: ./img
    init: true
    stop_grace_period: 1s
    develop:
      watch:
        - path: ./img
          action: rebuild
%s`

func TestWatch(t *testing.T) {
	m := newMachine(t)
	p := m.project(fmt.Sprintf(watchCompose, ""), map[string]string{
		".env":           "X_VALUE=1\n",
		"src/old.txt":    "old\n",
		"hooks/h":        "v1\n",
		"img/Dockerfile": "FROM localhost/busybox:e2e\nCOPY msg /msg\nCMD [\"sleep\", \"100000\"]\n",
		"img/msg":        "v1\n",
	})
	w := p.watch("--debounce", "200ms")
	w.expect(time.Minute, "reconciled after start")
	ids := p.ids()
	if len(ids) != 3 {
		t.Fatalf("containers %v", ids)
	}

	// an environment value in .env: only a is recreated
	p.write(".env", "X_VALUE=2\n")
	w.expect(30*time.Second, ".env changed", "changed [a]")
	w.expect(30*time.Second, "reconciled after", ".env changed")
	now := p.ids()
	if now[name(p, "a")] == ids[name(p, "a")] {
		t.Fatalf("a not recreated: %v -> %v", ids, now)
	}
	if now[name(p, "b")] != ids[name(p, "b")] {
		t.Fatalf("b recreated by a change to a: %v -> %v", ids, now)
	}
	if env := m.environOf(now[name(p, "a")]); !strings.Contains(env, "X=2") {
		t.Fatalf("a's environment %q", env)
	}
	ids = now

	// a service added, then removed
	p.write("compose.yaml", fmt.Sprintf(watchCompose, "  c:\n    <<: *base\n    command: [\"sleep\", \"100000\"]\n"))
	w.expect(30*time.Second, "compose.yaml changed", "added [c]")
	w.expect(30*time.Second, "reconciled after", "compose.yaml changed")
	eventually(t, 10*time.Second, "c running", func() error { return running(p, "c") })
	p.write("compose.yaml", fmt.Sprintf(watchCompose, ""))
	w.expect(30*time.Second, "compose.yaml changed", "removed [c]")
	w.expect(30*time.Second, "reconciled after", "compose.yaml changed")
	if now := p.ids(); !sameMap(now, ids) {
		t.Fatalf("after removing c: %v, want %v", now, ids)
	}

	// broken YAML: the error names the file and line, nothing is touched
	p.write("compose.yaml", "services:\n  a:\n    image: [unclosed\n")
	line := w.expect(30*time.Second, "invalid project, keeping the running one")
	if !strings.Contains(line, "compose.yaml") || !strings.Contains(line, "line") {
		t.Fatalf("error without file and line: %s", line)
	}
	// (ps needs -p: the files do not load)
	out := p.must("-p", filepath.Base(p.dir), "ps", "-a", "--format", "json")
	for _, n := range []string{name(p, "a"), name(p, "b")} {
		if !strings.Contains(out, `"ID":"`+ids[n]+`"`) {
			t.Fatalf("broken file touched %s (%s): %s", n, ids[n], out)
		}
	}
	if strings.Count(out, `"State":"running"`) != 3 {
		t.Fatalf("containers not all running while the file is broken: %s", out)
	}
	// fixed, with a change: converges again
	p.write(".env", "X_VALUE=3\n")
	p.write("compose.yaml", fmt.Sprintf(watchCompose, ""))
	w.expect(30*time.Second, "reconciled after")
	eventually(t, 10*time.Second, "a recreated with X=3", func() error {
		if env := m.environOf(p.ids()[name(p, "a")]); !strings.Contains(env, "X=3") {
			return fmt.Errorf("environment %q", env)
		}
		return nil
	})
	ids = p.ids()
	a := ids[name(p, "a")]

	// sync: a new file, a changed one, a deleted one, an ignored one
	p.write("src/new.txt", "new\n")
	p.write("src/dir/deep.txt", "deep\n")
	p.write("src/debug.log", "noise\n")
	w.expect(30*time.Second, "a: synced")
	for path, want := range map[string]string{"/app/new.txt": "new\n", "/app/dir/deep.txt": "deep\n", "/app/debug.log": ""} {
		if got := m.inContainer(a, path); got != want {
			t.Fatalf("%s in a: %q, want %q", path, got, want)
		}
	}
	p.write("src/new.txt", "changed\n")
	os.Remove(filepath.Join(p.dir, "src/dir/deep.txt"))
	w.expect(30*time.Second, "a: synced")
	if got := m.inContainer(a, "/app/new.txt"); got != "changed\n" {
		t.Fatalf("changed file in a: %q", got)
	}
	if got := m.inContainer(a, "/app/dir/deep.txt"); got != "" {
		t.Fatalf("deleted file still in a: %q", got)
	}

	// sync+exec runs the command after the copy
	p.write("hooks/h", "v2\n")
	w.expect(30*time.Second, "b: synced", "ran exec")
	if got := m.inContainer(ids[name(p, "b")], "/ran"); got != "v2\n" {
		t.Fatalf("sync+exec: /ran is %q", got)
	}

	// rebuild: a source change builds the image again and recreates img
	p.write("img/msg", "v2\n")
	// The pass that recreates img is the rebuild's, or one a container
	// event started just before the rebuild's own request (it reads the
	// new image all the same: CI saw "reconciled after container ...
	// changed state" do it): the recreate is what counts, then the line.
	eventually(t, 2*time.Minute, "img recreated from the new image", func() error {
		if got := m.inContainer(p.ids()[name(p, "img")], "/msg"); got != "v2\n" {
			return fmt.Errorf("/msg is %q", got)
		}
		return nil
	})
	w.expect(10*time.Second, "img: rebuilt")
	if now := p.ids(); now[name(p, "a")] != a || now[name(p, "b")] != ids[name(p, "b")] {
		t.Fatalf("rebuild of img touched other services: %v -> %v", ids, now)
	}

	// a container killed from outside comes back (container events, not
	// the 30s resync)
	start := time.Now()
	m.killContainer(a)
	eventually(t, 15*time.Second, "killed container back", func() error {
		if err := running(p, "a"); err != nil {
			return err
		}
		if s, _ := m.runtimeState(p.ids()[name(p, "a")]); s.Started.Before(start) {
			return fmt.Errorf("not restarted yet")
		}
		return nil
	})

	if err := w.exit(); err != nil {
		t.Fatalf("berth watch after SIGINT: %v", err)
	}
}

// name is the container name of replica 1 of a service.
func name(p *project, service string) string {
	return filepath.Base(p.dir) + "-" + service + "-1"
}

func running(p *project, service string) error {
	for _, e := range p.ps() {
		if e.Service == service && e.State == "running" {
			return nil
		}
	}
	return fmt.Errorf("no running container of %s", service)
}

// environOf is the environment of a container's process.
func (m *machine) environOf(id string) string {
	s, err := m.runtimeState(id)
	if err != nil || s.Pid == 0 {
		return ""
	}
	pid := fmt.Sprint(s.Pid)
	// with init: true the recorded pid is the init; the service's process
	// is its child
	if kids, _ := os.ReadFile(filepath.Join("/proc", pid, "task", pid, "children")); len(kids) > 0 {
		pid = strings.Fields(string(kids))[0]
	}
	b, _ := os.ReadFile(filepath.Join("/proc", pid, "environ"))
	return strings.ReplaceAll(string(b), "\x00", "\n")
}

// TestWatchExample runs examples/watch (a copy) as its README says, with
// berth up --watch, and makes two of the edits the README lists.
func TestWatchExample(t *testing.T) {
	m := newMachine(t)
	if _, err := m.Script("busybox-image.sh"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "watch")
	if out, err := exec.Command("cp", "-r", filepath.Join(repoRoot, "examples", "watch"), dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	p := m.at(dir)
	w := p.controller("up", "--watch", "--debounce", "200ms")
	w.expect(time.Minute, "web: initial sync of site")
	page := func(url, want string) func() error {
		return func() error {
			got, err := m.Get(url)
			if err != nil || !strings.Contains(got, want) {
				return fmt.Errorf("%s: %q %v", url, got, err)
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "page", page("http://127.0.0.1:8090/", "Edit examples/watch/site/index.html"))
	eventually(t, 20*time.Second, "greeting", page("http://127.0.0.1:8091/cgi-bin/greet", "hello from berth watch"))
	web := p.ids()["berth-watch-example-web-1"]

	p.write("site/index.html", "<p>edited</p>\n")
	eventually(t, 10*time.Second, "synced page", page("http://127.0.0.1:8090/", "edited"))
	p.write(".env", "GREETING=edited greeting\n")
	w.expect(30*time.Second, ".env changed", "changed [api]")
	// the recreated api gets its cgi-bin again (initial_sync per container)
	eventually(t, 20*time.Second, "new greeting", page("http://127.0.0.1:8091/cgi-bin/greet", "edited greeting"))
	if now := p.ids()["berth-watch-example-web-1"]; now != web {
		t.Fatalf("web recreated by an edit of api's environment")
	}
	// sync+restart: the script is copied and api restarted in place
	api := p.ids()["berth-watch-example-api-1"]
	p.write("api/cgi-bin/greet.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho restarted: $GREETING\n")
	w.expect(30*time.Second, "api: synced 1 paths, restarted")
	eventually(t, 20*time.Second, "synced script", page("http://127.0.0.1:8091/cgi-bin/greet.sh", "restarted: edited greeting"))
	if now := p.ids()["berth-watch-example-api-1"]; now != api {
		t.Fatalf("sync+restart recreated api instead of restarting it")
	}
	if err := w.exit(); err != nil {
		t.Fatalf("berth up --watch after SIGINT: %v", err)
	}
}
