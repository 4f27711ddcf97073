package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const execCompose = `
name: clix
services:
  app:
    image: localhost/busybox:cli
    pull_policy: never
    init: true
    command: ["sleep", "3600"]
    environment:
      FROM_FILE: file
`

// TestExecCommand runs berth exec through the binary against a service
// scaled to two replicas with up --scale.
func TestExecCommand(t *testing.T) {
	m := newCLIMachine(t, execCompose, nil)
	m.must("up", "-d", "--scale", "app=2")

	out, _, code := m.berth("", "exec", "app", "sh", "-c", "echo $FROM_FILE; exit 3")
	if code != 3 || out != "file\n" {
		t.Errorf("exec exit 3: code %d, out %q", code, out)
	}
	out, errOut, code := m.berth("", "exec", "-e", "FROM_FILE=flag", "-e", "NEW=x", "-w", "/tmp", "-u", "nobody",
		"app", "sh", "-c", `echo "$FROM_FILE $NEW $(pwd) $(id -u)"`)
	if code != 0 || out != "flag x /tmp 65534\n" {
		t.Errorf("exec -e -w -u: code %d, out %q %s", code, out, errOut)
	}
	// Not on a terminal: stdin is passed through, no pty is made.
	out, _, code = m.berth("piped input\n", "exec", "app", "sh", "-c", "cat; [ -t 0 ] && echo tty || echo notty")
	if code != 0 || out != "piped input\nnotty\n" {
		t.Errorf("exec with piped stdin: code %d, out %q", code, out)
	}
	one, _, _ := m.berth("", "exec", "-T", "app", "hostname")
	two, _, code := m.berth("", "exec", "--index", "2", "app", "hostname")
	if code != 0 || one == two || strings.TrimSpace(two) == "" {
		t.Errorf("--index 2 ran in the same container as replica 1: %q %q (code %d)", one, two, code)
	}
	_, errOut, code = m.berth("", "exec", "--index", "3", "app", "true")
	if code == 0 || !strings.Contains(errOut, "no container number 3") {
		t.Errorf("exec --index 3: code %d, %s", code, errOut)
	}
	_, errOut, code = m.berth("", "exec", "nosuch", "true")
	if code != 1 || !strings.Contains(errOut, "no such service: nosuch") {
		t.Errorf("exec of a missing service: code %d, %s", code, errOut)
	}
	// A signal that ends the command is reported as 128+N.
	_, _, code = m.berth("", "exec", "app", "sh", "-c", "kill -9 $$")
	if code != 137 {
		t.Errorf("exec killed by SIGKILL: code %d, want 137", code)
	}
	// -d returns at once and leaves the command running.
	start := time.Now()
	m.must("exec", "-d", "app", "sh", "-c", "sleep 1; echo done > /tmp/detached")
	if time.Since(start) > 900*time.Millisecond {
		t.Errorf("exec -d waited for the command (%v)", time.Since(start))
	}
	eventually(t, 10*time.Second, "exec -d's command", func() error {
		out, _, _ := m.berth("", "exec", "app", "cat", "/tmp/detached")
		if out != "done\n" {
			return fmt.Errorf("/tmp/detached: %q", out)
		}
		return nil
	})
	// -p NAME reaches the project from any directory.
	projectDir := m.dir
	m.dir = t.TempDir()
	out, errOut, code = m.berth("", "-p", "clix", "exec", "-T", "app", "echo", "anywhere")
	m.dir = projectDir
	if code != 0 || out != "anywhere\n" {
		t.Errorf("-p clix exec from another directory: code %d, out %q %s", code, out, errOut)
	}
	m.must("stop", "-t", "0")
	_, errOut, code = m.berth("", "exec", "app", "true")
	if code == 0 || !strings.Contains(errOut, "not running") {
		t.Errorf("exec in a stopped container: code %d, %s", code, errOut)
	}
}

// TestExecTerminal runs exec and run on a terminal (script(1) provides
// one): exec gets a pty of the container's own devpts, run a pty too, and
// both exit statuses come through.
func TestExecTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("needs script(1)")
	}
	m := newCLIMachine(t, execCompose, nil)
	m.must("up", "-d")
	onTerminal := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		inner := m.command(ctx, args...)
		cmd := exec.CommandContext(ctx, script, "-eqc", shellJoin(inner.Args), "/dev/null")
		cmd.Dir, cmd.Env = inner.Dir, inner.Env
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := onTerminal("exec", "app", "sh", "-c", "tty; [ -t 1 ] && echo on-a-tty; exit 5")
	if code != 5 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "on-a-tty\r\n") {
		t.Errorf("exec on a terminal: exit %d, output %q", code, out)
	}
	out, code = onTerminal("exec", "-T", "app", "sh", "-c", "[ -t 1 ] && echo on-a-tty || echo no-tty")
	if code != 0 || !strings.Contains(out, "no-tty") {
		t.Errorf("exec -T on a terminal: exit %d, output %q", code, out)
	}
	out, code = onTerminal("run", "--rm", "app", "sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; exit 6")
	if code != 6 || !strings.Contains(out, "on-a-tty\r\n") {
		t.Errorf("run on a terminal: exit %d, output %q", code, out)
	}
}

// shellJoin quotes args for sh -c.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
