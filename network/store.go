package network

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const stateFile = "state.json"

// lockState takes the exclusive lock that serialises every mutation of the
// allocation file, across goroutines (separate open file descriptions) and
// processes. The returned function releases it.
func lockState(dir string) (func(), error) {
	return lockFile(filepath.Join(dir, "lock"))
}

// lockFile takes an exclusive flock on path, creating it (and its
// directory) when missing.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// loadState reads the allocation file; a missing file is an empty state.
func loadState(dir string) (*diskState, error) {
	st := &diskState{}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
		}
	}
	if st.Networks == nil {
		st.Networks = map[string]*NetworkInfo{}
	}
	if st.Endpoints == nil {
		st.Endpoints = map[string]*endpointRecord{}
	}
	return st, nil
}

// saveState writes st unless the file already says exactly that (most
// converging calls change nothing, and each write costs an fsync).
func saveState(dir string, st *diskState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, stateFile)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, b) {
		return nil
	}
	return writeFileAtomic(path, b, 0o644)
}

// writeFileAtomic leaves either the old or the new content at path, never a
// torn file, even across a crash.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeRuntimeFile rewrites path in place, without forcing it to disk:
// for files under the runtime root, which Attach regenerates anyway. In
// place, because the runtime bind-mounts them (hosts, resolv.conf): a
// renamed-over file would leave the container with the old inode. An
// unchanged file is left alone.
func writeRuntimeFile(path string, data []byte, mode os.FileMode) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
