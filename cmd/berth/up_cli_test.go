package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const upCompose = `
name: clia
services:
  talker:
    image: localhost/busybox:cli
    pull_policy: never
    init: true
    command: ["sh", "-c", "echo hello-attached; exec sleep 3600"]
  job:
    image: localhost/busybox:cli
    pull_policy: never
    command: ["echo", "job-done"]
`

// syncBuffer is a bytes.Buffer a running command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUpAttached runs berth up without -d: it streams the containers'
// output with name prefixes, and Ctrl-C stops the project and exits 130.
func TestUpAttached(t *testing.T) {
	m := newCLIMachine(t, upCompose, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := m.command(ctx, "up")
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// nsenter passes the signal on to berth, its only child.
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "attached output", func() error {
		for _, want := range []string{"Attaching to clia-job-1, clia-talker-1\n", "clia-talker-1 | hello-attached\n",
			"clia-job-1    | job-done\n", "clia-job-1 exited with code 0\n"} {
			if !strings.Contains(out.String(), want) {
				return fmt.Errorf("no %q in\n%s\n%s", want, out.String(), errOut.String())
			}
		}
		return nil
	})
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("up interrupted: %v, want exit status 130\n%s", err, errOut.String())
	}
	for _, want := range []string{"Gracefully stopping... (press Ctrl+C again to force)\n", " Container clia-talker-1  Stopped\n"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("no %q in stderr:\n%s", want, errOut.String())
		}
	}
	if ps := m.must("ps", "-q"); ps != "" {
		t.Errorf("containers still running after Ctrl-C: %q", ps)
	}
	// Attached to a service whose containers have all exited, up returns
	// by itself with status 0.
	stdout, stderr, code := m.berth("", "up", "job")
	if code != 0 || !strings.Contains(stdout, "clia-job-1 exited with code 0") {
		t.Errorf("up job: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// --abort-on-container-exit: the job's exit stops talker and is
	// berth's status; --exit-code-from talker returns talker's instead.
	m.writeCompose(strings.Replace(upCompose, `["echo", "job-done"]`, `["sh", "-c", "exit 3"]`, 1))
	stdout, stderr, code = m.berth("", "up", "--abort-on-container-exit")
	if code != 3 || !strings.Contains(stdout, "Aborting on container exit...") || !strings.Contains(stderr, "Container clia-talker-1  Stopped") {
		t.Errorf("up --abort-on-container-exit: exit %d, want 3\n%s\n%s", code, stdout, stderr)
	}
	if ps := m.must("ps", "-q"); ps != "" {
		t.Errorf("containers still running after the abort: %q", ps)
	}
	_, stderr, code = m.berth("", "up", "--exit-code-from", "talker")
	talker := -1
	for _, l := range strings.Split(strings.TrimSpace(m.must("ps", "-a", "--format", "json")), "\n") {
		var e struct {
			Service  string
			ExitCode int
		}
		json.Unmarshal([]byte(l), &e)
		if e.Service == "talker" {
			talker = e.ExitCode
		}
	}
	if code == 3 || code != talker {
		t.Errorf("up --exit-code-from talker: exit %d, talker exited %d\n%s", code, talker, stderr)
	}
}

// TestUpFlags covers --progress json, --scale, --no-recreate/--force-recreate,
// --no-start, --pull never and --wait through the binary.
func TestUpFlags(t *testing.T) {
	m := newCLIMachine(t, upCompose, nil)
	_, errOut, code := m.berth("", "up", "-d", "--progress", "json", "--scale", "talker=2", "talker")
	if code != 0 {
		t.Fatalf("up --progress json: exit %d\n%s", code, errOut)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var e struct{ ID, Text, Status string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("--progress json line %q: %v", l, err)
		}
		seen[e.ID+" "+e.Text] = true
	}
	for _, want := range []string{"Network clia_default Created", "Container clia-talker-1 Started", "Container clia-talker-2 Started"} {
		if !seen[want] {
			t.Errorf("no event %q in\n%s", want, errOut)
		}
	}
	if ps := m.must("ps", "--format", "json"); strings.Count(ps, `"Service":"talker"`) != 2 || strings.Contains(ps, "clia-job") {
		t.Errorf("up --scale talker=2 talker:\n%s", ps)
	}
	// A second up with nothing changed says nothing; --dry-run of a
	// forced recreate plans it without doing it.
	if _, errOut, _ := m.berth("", "up", "-d", "--progress", "plain", "--scale", "talker=2", "talker"); errOut != "" {
		t.Errorf("no-op up printed:\n%s", errOut)
	}
	plan, _, _ := m.berth("", "up", "--dry-run", "--force-recreate", "--scale", "talker=2", "talker")
	if !strings.Contains(plan, "service:talker:1") || !strings.Contains(plan, "CreateContainer") {
		t.Errorf("--dry-run --force-recreate plan:\n%s", plan)
	}
	// --no-start creates without starting; --wait then starts and waits.
	_, errOut, code = m.berth("", "up", "--no-start", "--progress", "plain", "job")
	if code != 0 || !strings.Contains(errOut, " Container clia-job-1  Created") || strings.Contains(errOut, "clia-job-1  Started") {
		t.Errorf("up --no-start: exit %d\n%s", code, errOut)
	}
	_, errOut, code = m.berth("", "up", "--wait", "--wait-timeout", "20", "--scale", "talker=2")
	if code != 0 {
		t.Errorf("up --wait: exit %d\n%s", code, errOut)
	}
	// --pull never on an image the store lacks fails; --pull rejects a
	// value compose does not know; --scale names a service.
	absent := strings.ReplaceAll(upCompose, "localhost/busybox:cli", "localhost/absent:1")
	m.writeCompose(strings.ReplaceAll(absent, "pull_policy: never", "pull_policy: missing"))
	if _, errOut, code := m.berth("", "up", "-d", "--pull", "never", "job"); code == 0 || !strings.Contains(errOut, "localhost/absent:1 is not in the store and pull_policy is never") {
		t.Errorf("up --pull never with a missing image: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := m.berth("", "up", "--pull", "sometimes"); code == 0 || !strings.Contains(errOut, "--pull") {
		t.Errorf("up --pull sometimes: exit %d %s", code, errOut)
	}
	if _, errOut, code := m.berth("", "up", "--scale", "nosuch=2"); code == 0 || !strings.Contains(errOut, "no such service") {
		t.Errorf("up --scale nosuch=2: exit %d %s", code, errOut)
	}
}

const buildCompose = `
name: clib
services:
  b:
    build: ./ctx
    init: true
    command: ["sleep", "3600"]
`

// TestUpBuildFlags: --no-build refuses to build a missing image, --build
// builds it (berth's builder, FROM an image in the store).
func TestUpBuildFlags(t *testing.T) {
	m := newCLIMachine(t, buildCompose, map[string]string{
		"ctx/Dockerfile": "FROM localhost/busybox:cli\nRUN echo built > /built\n",
	})
	if _, errOut, code := m.berth("", "up", "-d", "--no-build"); code == 0 || !strings.Contains(errOut, "pull_policy is never") {
		t.Errorf("up --no-build with the image missing: exit %d\n%s", code, errOut)
	}
	_, errOut, code := m.berth("", "up", "-d", "--build", "--progress", "plain")
	if code != 0 || !strings.Contains(errOut, " Image clib-b  Built") {
		t.Fatalf("up --build: exit %d\n%s", code, errOut)
	}
	if out, _, _ := m.berth("", "exec", "b", "cat", "/built"); out != "built\n" {
		t.Errorf("built image content: %q", out)
	}
	// --no-build with the image present just uses it.
	if _, errOut, code := m.berth("", "up", "-d", "--no-build"); code != 0 {
		t.Errorf("up --no-build with the image built: exit %d\n%s", code, errOut)
	}
}

const attachCompose = `
name: clat
services:
  a:
    image: localhost/busybox:cli
    pull_policy: never
    command: ["sh", "-c", "echo from-a; sleep 1"]
  b:
    image: localhost/busybox:cli
    pull_policy: never
    command: ["sh", "-c", "echo from-b; sleep 2"]
`

// TestUpAttachFlags: --attach shows only the named services' output,
// --no-attach hides one, --timestamps prefixes each line with its time;
// exits are watched on every container up started (up returns once all
// have exited, and --abort-on-container-exit fires on one not attached),
// as docker compose does.
func TestUpAttachFlags(t *testing.T) {
	m := newCLIMachine(t, attachCompose, nil)
	stdout, stderr, code := m.berth("", "up", "--attach", "a", "--timestamps")
	if code != 0 || !strings.Contains(stdout, "Attaching to clat-a-1\n") || strings.Contains(stdout, "from-b") ||
		!strings.Contains(stdout, "clat-b-1 exited with code 0") {
		t.Errorf("up --attach a: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var stamped bool
	for _, l := range strings.Split(stdout, "\n") {
		if rest, ok := strings.CutPrefix(l, "clat-a-1 | "); ok {
			ts, line, _ := strings.Cut(rest, " ")
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || line != "from-a" {
				t.Errorf("--timestamps line %q: %v", l, err)
			}
			stamped = true
		}
	}
	if !stamped {
		t.Errorf("no line of a in:\n%s", stdout)
	}
	stdout, stderr, code = m.berth("", "up", "--force-recreate", "--no-attach", "a")
	if code != 0 || !strings.Contains(stdout, "Attaching to clat-b-1\n") || strings.Contains(stdout, "from-a") ||
		!strings.Contains(stdout, "clat-b-1 | from-b\n") || !strings.Contains(stdout, "clat-a-1 exited with code 0") {
		t.Errorf("up --no-attach a: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, stderr, code := m.berth("", "up", "--attach", "nosuch"); code == 0 || !strings.Contains(stderr, "cannot attach to services not included in up: nosuch") {
		t.Errorf("up --attach nosuch: exit %d %s", code, stderr)
	}
	if _, stderr, code := m.berth("", "up", "a", "--attach", "b"); code == 0 || !strings.Contains(stderr, "cannot attach to services not included in up: b") {
		t.Errorf("up a --attach b: exit %d %s", code, stderr)
	}
	if _, stderr, code := m.berth("", "up", "-d", "--attach", "a"); code == 0 || !strings.Contains(stderr, "--attach") {
		t.Errorf("up -d --attach a: exit %d %s", code, stderr)
	}
	// a long-running service attached, the unattached job's failure aborts.
	m.writeCompose(strings.Replace(strings.Replace(attachCompose, "echo from-a; sleep 1", "echo from-a; exec sleep 3600", 1),
		"echo from-b; sleep 2", "echo from-b; sleep 1; exit 3", 1))
	stdout, stderr, code = m.berth("", "up", "--abort-on-container-exit", "--attach", "a")
	if code != 3 || !strings.Contains(stdout, "Aborting on container exit...") || strings.Contains(stdout, "from-b") ||
		!strings.Contains(stderr, "Container clat-a-1  Stopped") {
		t.Errorf("up --abort-on-container-exit --attach a: exit %d, want 3\n%s\n%s", code, stdout, stderr)
	}
	// A dependency of the service named can be attached by name.
	m.writeCompose(attachCompose + `
  c:
    image: localhost/busybox:cli
    pull_policy: never
    command: ["echo", "from-c"]
    depends_on: [b]
`)
	stdout, stderr, code = m.berth("", "up", "--force-recreate", "c", "--attach", "b")
	if code != 0 || !strings.Contains(stdout, "Attaching to clat-b-1\n") || !strings.Contains(stdout, "clat-b-1 | from-b\n") ||
		strings.Contains(stdout, "from-c") || !strings.Contains(stdout, "clat-c-1 exited with code 0") || strings.Contains(stdout, "clat-a-1") {
		t.Errorf("up c --attach b: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
