package cli

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime"
)

// TestCPathOfRun runs `runtime run` through a binary linking this package:
// with a monitor up (a detached container started by the Go path), runs are served by
// the C constructor before the Go runtime starts (GODEBUG=inittrace=1
// prints nothing then), with the container's output, exit status, removal,
// errors and forwarded signals as the Go path has them; a terminal spec
// goes back to the Go path, which relays the pty.
func TestCPathOfRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	bin := filepath.Join(t.TempDir(), "berth")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/clitest").CombinedOutput(); err != nil {
		t.Skipf("build: %v\n%s", err, out)
	}
	runRoot, err := os.MkdirTemp("/run", "berth-cpath-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt, _ := Open(runRoot)
		if list, _ := rt.List(); len(list) > 0 {
			t.Errorf("containers left: %d", len(list))
		}
		os.RemoveAll(runRoot)
	})
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no busybox")
	}
	os.WriteFile(filepath.Join(rootfs, "bin/busybox"), b, 0o755)
	for _, a := range []string{"sh", "sleep", "test", "echo"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	spec := func(terminal bool, args ...string) {
		s := runtime.DefaultSpec(args)
		s.Root.Path = "rootfs"
		s.Process.Terminal = terminal
		j, _ := json.Marshal(s)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), j, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(id string) (*exec.Cmd, *strings.Builder, *strings.Builder) {
		cmd := exec.Command(bin, "--run-root", runRoot, "runtime", "run", "--bundle", bundle, id)
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", "BERTH_RUN_ROOT=")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		return cmd, &out, &errb
	}
	goStarted := func(stderr string) bool { return strings.Contains(stderr, "init runtime @") }

	// A detached container keeps the monitor up (idle, it exits in 2 s,
	// and the first run after that takes the Go path to start one).
	spec(false, "sleep", "60")
	keep := exec.Command(bin, "--run-root", runRoot, "runtime", "run", "-d", "--bundle", bundle, "keep")
	if err := keep.Run(); err != nil { // stdio /dev/null: the container keeps it
		t.Fatalf("run -d: %v", err)
	}
	defer exec.Command(bin, "--run-root", runRoot, "runtime", "delete", "-f", "keep").Run()

	spec(false, "sh", "-c", "echo hi; exit 3")
	for _, id := range []string{"c1", "c2", "c3"} {
		cmd, out, errb := run(id)
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || out.String() != "hi\n" {
			t.Fatalf("%s: %v, stdout %q stderr %q", id, err, out, errb)
		}
		if goStarted(errb.String()) {
			t.Fatalf("%s: the Go runtime started: %s", id, errb)
		}
	}

	// An error of the monitor is runc's: "berth: ..." and status 1.
	cmd, _, errb := run("bad..")
	cmd.Args[len(cmd.Args)-2] = rootfs // no config.json there
	if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "berth: ") || goStarted(errb.String()) {
		t.Fatalf("missing bundle: %v %q", err, errb)
	}

	// A signal to the client reaches the container.
	spec(false, "sh", "-c", `trap "exit 7" TERM; echo ready; while :; do sleep 0.05; done`)
	cmd, _, errb = run("sig")
	pr, pw, _ := os.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("container said %q (%s)", line, errb)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 || goStarted(errb.String()) {
			t.Fatalf("after SIGTERM: %v %q", err, errb)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("SIGTERM not forwarded")
	}

	// A terminal: back to the Go path, which relays the pty.
	spec(true, "sh", "-c", "test -t 0 && echo on-a-tty")
	cmd, out, errb := run("tty")
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "on-a-tty") || !goStarted(errb.String()) {
		t.Fatalf("terminal: %v stdout %q stderr %q", err, out, errb)
	}
}
