package native

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// record is a container as the driver keeps it.
type record struct {
	ID      string              `json:"id"`
	Name    string              `json:"name"`
	Spec    state.ContainerSpec `json:"spec"`
	Created time.Time           `json:"created"`
	// Started records that the container ran once, so a container whose
	// runtime state is gone reads as exited rather than created.
	Started bool `json:"started,omitempty"`
}

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (d *Driver) readRecord(id string) (*record, error) {
	if !validID(id) {
		return nil, fmt.Errorf("container %q: %w", id, driver.ErrNotFound)
	}
	b, err := os.ReadFile(filepath.Join(d.containerDir(id), "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w", shortID(id), driver.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("container %s: corrupt record: %w", shortID(id), err)
	}
	return &r, nil
}

// writeRecord replaces the record atomically (write, fsync, rename).
func (d *Driver) writeRecord(r *record) error {
	dir := d.containerDir(r.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".record.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	return os.Rename(tmp, filepath.Join(dir, "record.json"))
}

// records reads every container record; a directory without one (a crash
// between mkdir and the first write) is removed.
func (d *Driver) records() ([]*record, error) {
	ents, err := os.ReadDir(d.containersDir())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && validID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	recs := make([]*record, len(ids))
	errs := make([]error, len(ids))
	inParallel(len(ids), func(i int) { recs[i], errs[i] = d.readRecord(ids[i]) })
	out := make([]*record, 0, len(ids))
	for i, r := range recs {
		if errors.Is(errs[i], driver.ErrNotFound) {
			continue
		}
		if errs[i] != nil {
			return nil, errs[i]
		}
		out = append(out, r)
	}
	return out, nil
}

// inParallel runs fn(0..n-1) on a few goroutines: reading 50 records and
// runtime states one after the other waits on the disk 100 times in a
// row, which is most of what a no-op up costs.
func inParallel(n int, fn func(i int)) {
	workers := min(n, 8)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// lookup finds a container by id, unique id prefix or name.
func (d *Driver) lookup(ref string) (*record, error) {
	if validID(ref) {
		return d.readRecord(ref)
	}
	recs, err := d.records()
	if err != nil {
		return nil, err
	}
	var found *record
	for _, r := range recs {
		if r.Name == ref {
			return r, nil
		}
		if len(ref) >= 4 && strings.HasPrefix(r.ID, ref) {
			if found != nil {
				return nil, fmt.Errorf("container %q: ambiguous id prefix: %w", ref, driver.ErrInvalid)
			}
			found = r
		}
	}
	if found == nil {
		return nil, fmt.Errorf("container %q: %w", ref, driver.ErrNotFound)
	}
	return found, nil
}

// lockNames holds the name index of the machine: a mutex within this
// process, a flock across berth processes.
func (d *Driver) lockNames() (func(), error) {
	d.names.Lock()
	f, err := os.OpenFile(filepath.Join(d.containersDir(), ".names.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		d.names.Unlock()
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		d.names.Unlock()
		return nil, err
	}
	return func() { f.Close(); d.names.Unlock() }, nil
}

func (d *Driver) nameTaken(name, except string) (bool, error) {
	recs, err := d.records()
	if err != nil {
		return false, err
	}
	for _, r := range recs {
		if r.Name == name && r.ID != except {
			return true, nil
		}
	}
	return false, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
