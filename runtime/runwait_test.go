package runtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An attached run --rm: the caller gets the exit code and the container is
// gone; a caller that went away before the exit finds it kept, stopped,
// with its exit code (the exit is then written to the state).
func TestRunWaitRemove(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	for i, id := range []string{"rm1", "rm2", "rm3"} {
		s, err := r.RunWait(ctx, id, CreateOptions{Spec: testSpec(t, "sh", "-c", "exit 5")}, true, nil)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if s.ExitCode != 5 || s.Status != StatusStopped {
			t.Fatalf("run %d: status %s, exit %d; want stopped, 5", i, s.Status, s.ExitCode)
		}
		if _, err := r.State(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("run %d: container left after run --rm: %v", i, err)
		}
	}

	gone, cancel := context.WithCancel(ctx)
	started := func(*State) { cancel() }
	if _, err := r.RunWait(gone, "kept", CreateOptions{Spec: testSpec(t, "sh", "-c", "sleep 0.3; exit 4")}, true, started); err == nil {
		t.Fatal("RunWait with its context ended returned no error")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, err := r.State("kept")
		if err != nil {
			t.Fatalf("a run whose caller went was not kept: %v", err)
		}
		if s.Status == StatusStopped {
			if s.ExitCode != 4 {
				t.Fatalf("kept container: exit %d, want 4", s.ExitCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kept container still %s", s.Status)
		}
	}
	if err := r.Delete(ctx, "kept", false); err != nil {
		t.Fatal(err)
	}
}
