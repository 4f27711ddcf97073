package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Locker serialises the mutations of one project between processes (a
// watch loop and a berth up typed meanwhile).
type Locker interface {
	// Lock blocks until the lock is held or ctx ends; unlock releases it.
	Lock(ctx context.Context) (unlock func(), err error)
}

// FileLock is a Locker over flock(2) on path, normally
// <root>/projects/<name>.lock. The kernel drops the lock when the holder
// dies, so a SIGKILLed controller never leaves the project locked.
func FileLock(path string) Locker { return fileLock(path) }

type fileLock string

// lockPoll is how often a waiting Lock retries: flock cannot be
// interrupted by a context, so it is taken without blocking, repeatedly.
const lockPoll = 20 * time.Millisecond

func (l fileLock) Lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(string(l)), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(string(l), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil && !l.current(f) {
			// The holder removed the file (berth down of the whole
			// project) while this one waited: the lock is on a name
			// nobody else will open again. Take the new file's.
			f.Close()
			if f, err = os.OpenFile(string(l), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600); err != nil {
				return nil, err
			}
			continue
		}
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", string(l), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// current tells whether f is still the file at the lock's path.
func (l fileLock) current(f *os.File) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(string(l))
	return err == nil && os.SameFile(held, now)
}

// RemoveLockFile removes a project's lock file; the caller holds the lock
// (waiters notice and take a new file), so that a project that is gone
// leaves nothing under the state root (its holds record neither).
func RemoveLockFile(path string) error {
	for _, p := range []string{holdFile(path), path} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}
