package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLogRotationAndRead writes past the size limit: the log rotates,
// keeps at most LogMaxFiles files, and Logs reads the rotated ones first.
func TestLogRotationAndRead(t *testing.T) {
	root := t.TempDir()
	r := &Runtime{root: root}
	os.MkdirAll(filepath.Join(root, "c"), 0o700)
	s := &State{ID: "c", Status: StatusStopped, Options: CreateOptions{LogMaxSize: 1000, LogMaxFiles: 3}}
	if err := r.writeState(s); err != nil {
		t.Fatal(err)
	}
	w, err := openLogWriter(r.logPath(s), 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		w.write("stdout", []byte(fmt.Sprintf("line %03d\n", i)))
	}
	w.close()
	files, _ := filepath.Glob(r.logPath(s) + "*")
	if len(files) != 3 {
		t.Fatalf("%d log files, want 3: %v", len(files), files)
	}
	var got []string
	err = r.Logs(context.Background(), "c", LogOptions{}, func(e LogEntry) error {
		got = append(got, strings.TrimSpace(e.Log))
		if e.Time.IsZero() || e.Stream != "stdout" {
			t.Fatalf("entry %+v", e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[len(got)-1] != "line 099" {
		t.Fatalf("last entry %v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order at %d: %s after %s", i, got[i], got[i-1])
		}
	}
	var tail []string
	r.Logs(context.Background(), "c", LogOptions{Tail: 2}, func(e LogEntry) error {
		tail = append(tail, strings.TrimSpace(e.Log))
		return nil
	})
	if len(tail) != 2 || tail[1] != "line 099" {
		t.Fatalf("tail %v", tail)
	}
}

// TestLogsFollow: a follower sees lines written after it started.
func TestLogsFollow(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 20*time.Second)
	if _, err := r.Run(ctx, "follow", CreateOptions{Spec: testSpec(t, "sh", "-c", "sleep 0.3; echo one; sleep 0.3; echo two")}); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := r.Logs(ctx, "follow", LogOptions{Follow: true}, func(e LogEntry) error {
		got = append(got, strings.TrimSpace(e.Log))
		return nil
	})
	if err != nil || strings.Join(got, ",") != "one,two" {
		t.Fatalf("followed %v, %v", got, err)
	}
}
