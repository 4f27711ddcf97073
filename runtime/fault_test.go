package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestHelperCreateProcess is not a test: it is the "berth CLI" that
// TestKillCLIDuringCreate SIGKILLs mid-create.
func TestHelperCreateProcess(t *testing.T) {
	root := os.Getenv("BERTH_TEST_HELPER_ROOT")
	if root == "" {
		t.Skip("helper process only")
	}
	r, _ := New(root)
	s := testSpec(t, "sleep", "30")
	r.Run(context.Background(), os.Getenv("BERTH_TEST_HELPER_ID"), CreateOptions{Spec: s})
}

// checkWholeOrNothing: every container is either supervised and alive, or
// gone without residue.
func checkWholeOrNothing(t *testing.T, r *Runtime, id string) {
	t.Helper()
	s, err := r.State(id)
	if err != nil {
		if _, serr := os.Stat(filepath.Join(r.Root(), id)); serr == nil {
			t.Errorf("%s: state directory without a readable state: %v", id, err)
		}
		return
	}
	switch s.Status {
	case StatusCreated, StatusRunning:
		if !pidAlive(s.Pid, s.PidStart) {
			t.Errorf("%s: %s without a process", id, s.Status)
		}
	case StatusCreating:
		// Allowed only while a monitor is finishing it; the next monitor
		// call below settles it.
	default:
		t.Errorf("%s: half-made: %s", id, s.Status)
	}
}

func checkNoResidue(t *testing.T, r *Runtime, id string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(r.Root(), id)); !os.IsNotExist(err) {
		t.Errorf("%s: state left", id)
	}
	cg, err := openCgroup("/berth/" + id)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cg.dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s: cgroup %s left", id, d)
		}
	}
}

func TestKillCLIDuringCreate(t *testing.T) {
	r := newTestRuntime(t)
	busyboxRootfs(t)
	for i, delay := range []time.Duration{0, 2 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond, 80 * time.Millisecond} {
		id := fmt.Sprintf("cli%d", i)
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCreateProcess$")
		cmd.Env = append(os.Environ(), "BERTH_TEST_HELPER_ROOT="+r.Root(), "BERTH_TEST_HELPER_ID="+id)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		time.Sleep(300 * time.Millisecond) // the monitor finishes what it was asked
		checkWholeOrNothing(t, r, id)
		if err := r.Delete(ctxT(t, 20*time.Second), id, true); err != nil && !isNotFound(err) {
			t.Fatalf("delete %s: %v", id, err)
		}
		checkNoResidue(t, r, id)
	}
}

func TestKillMonitorDuringCreateAndStart(t *testing.T) {
	r := newTestRuntime(t)
	for i, delay := range []time.Duration{0, 3 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 60 * time.Millisecond} {
		id := fmt.Sprintf("mon%d", i)
		r.call(context.Background(), &request{Op: "ping"}, nil) // a monitor to kill
		mon := monitorPid(t, r)
		done := make(chan error, 1)
		go func() {
			_, err := r.Run(context.Background(), id, CreateOptions{Spec: testSpec(t, "sleep", "30")})
			done <- err
		}()
		time.Sleep(delay)
		syscall.Kill(mon, syscall.SIGKILL)
		<-done
		// The next call starts a monitor, which adopts or cleans up.
		r.call(context.Background(), &request{Op: "ping"}, nil)
		time.Sleep(100 * time.Millisecond)
		checkWholeOrNothing(t, r, id)
		if err := r.Delete(ctxT(t, 20*time.Second), id, true); err != nil && !isNotFound(err) {
			t.Fatalf("delete %s: %v", id, err)
		}
		checkNoResidue(t, r, id)
	}
}

func isNotFound(err error) bool {
	return err != nil && (os.IsNotExist(err) || errorsIs(err, ErrNotFound))
}

func errorsIs(err, target error) bool {
	for err != nil {
		if err == target {
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
