package reconciler

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestFileLockSurvivesRemoval: a holder that removes the lock file (down of
// a whole project) must not let a waiter and a newcomer both hold the lock.
func TestFileLockSurvivesRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "projects", "p.lock")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlockA, err := FileLock(path).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var holders, overlap atomic.Int32
	hold := func(done chan<- struct{}) {
		unlock, err := FileLock(path).Lock(ctx)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		if holders.Add(1) > 1 {
			overlap.Add(1)
		}
		time.Sleep(100 * time.Millisecond)
		holders.Add(-1)
		unlock()
		close(done)
	}
	waiter := make(chan struct{})
	go hold(waiter) // blocks on A's file
	time.Sleep(50 * time.Millisecond)
	if err := RemoveLockFile(path); err != nil {
		t.Fatal(err)
	}
	unlockA()
	newcomer := make(chan struct{})
	go hold(newcomer) // opens a new file at the path
	<-waiter
	<-newcomer
	if overlap.Load() != 0 {
		t.Fatal("two processes held the project lock at once after its file was removed")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the lock file should exist again after new holders: %v", err)
	}
}
