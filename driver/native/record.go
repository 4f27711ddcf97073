package native

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
	// runtime state is gone reads as exited rather than created. Starts
	// now leave the markStarted marker instead (see Driver.started).
	Started bool `json:"started,omitempty"`
}

// markStarted is the marker file of a container that ran once.
const markStarted = "started"

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

// Directories beside the containers' that are not containers: one being
// made (renamed to the id once its record is in) and one being removed
// (renamed from the id before its content goes). A crash leaves them;
// records() clears them, so a container directory without a record never
// exists for long and never for good.
const (
	newPrefix  = ".new-"
	prepPrefix = ".prep-" // made without the names lock: a leftover once old
	gonePrefix = ".gone-"
	// leftoverAge is how old a directory without a record must be to
	// be taken for a crash's leftover rather than work in progress.
	leftoverAge = time.Minute
)

// prepareRecord writes the record of a container being created, forced to
// disk, in a side directory (prepPrefix): outside the names lock, so that
// creates wait on the disk in parallel. commitRecord renames it into place.
func (d *Driver) prepareRecord(r *record) (string, error) {
	tmp := filepath.Join(d.containersDir(), prepPrefix+strconv.Itoa(os.Getpid())+"-"+r.ID)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return "", err
	}
	// The directory is private until renamed: the record goes straight
	// to its name (no temporary file and rename: each costs about a
	// millisecond on ext4).
	b, err := json.Marshal(r)
	if err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := writeSynced(filepath.Join(tmp, "record.json"), b, os.O_EXCL); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// commitRecord makes the prepared container directory the container's, in
// one step; the caller holds lockNames.
func (d *Driver) commitRecord(tmp string, r *record) error {
	if err := os.Rename(tmp, d.containerDir(r.ID)); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// commitNamed puts the prepared container in place under the names lock,
// unless another container has its name (driver.ErrAlreadyExists); the
// prepared directory is removed when it fails.
func (d *Driver) commitNamed(tmp string, r *record) error {
	unlock, err := d.lockNames()
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	defer unlock()
	if taken, err := d.nameTaken(r.Name, ""); err != nil {
		os.RemoveAll(tmp)
		return err
	} else if taken {
		os.RemoveAll(tmp)
		return fmt.Errorf("container name %s: %w", r.Name, driver.ErrAlreadyExists)
	}
	if err := d.commitRecord(tmp, r); err != nil {
		return err
	}
	return d.nameAdded(r.Name, r.ID)
}

// removeDir deletes a container's directory: renamed away first, so that
// a removal killed half-way leaves no container without a record.
func (d *Driver) removeDir(id string) error {
	gone := filepath.Join(d.containersDir(), gonePrefix+id)
	if err := os.RemoveAll(gone); err != nil {
		return err
	}
	if err := os.Rename(d.containerDir(id), gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(gone)
}

// clearLeftover removes what a crash left in the containers directory.
func (d *Driver) clearLeftover(e os.DirEntry) {
	path := filepath.Join(d.containersDir(), e.Name())
	if strings.HasPrefix(e.Name(), gonePrefix) {
		os.RemoveAll(path)
		return
	}
	// A create prepares .prep-<pid>-<id>: once that process is gone, the
	// directory is a leftover at once (a reused pid only defers it).
	if rest, ok := strings.CutPrefix(e.Name(), prepPrefix); ok {
		if pid, _, ok := strings.Cut(rest, "-"); ok {
			if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
				os.RemoveAll(path)
				return
			}
		}
	}
	if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > leftoverAge {
		os.RemoveAll(path)
	}
}

func hasNew(ents []os.DirEntry) bool {
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), newPrefix) {
			return true
		}
	}
	return false
}

// clearNew removes .new- directories when no create is under way in any
// process: creates make them while holding the names flock, so taking it
// without waiting proves them leftovers. Within a create (this process
// holds the lock) the try fails and nothing is touched.
func (d *Driver) clearNew() {
	f, err := os.OpenFile(filepath.Join(d.containersDir(), ".names.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(d.containersDir(), newPrefix+"*"))
	for _, m := range matches {
		os.RemoveAll(m)
	}
}

// writeRecord replaces the record atomically (write, fsync, rename).
func (d *Driver) writeRecord(r *record) error { return d.writeRecordSync(r, true) }

// writeRecordSync is writeRecord, flushed to disk before it replaces the
// old record only when sync.
func (d *Driver) writeRecordSync(r *record, sync bool) error {
	dir := d.containerDir(r.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeRecordIn(dir, r, sync)
}

func writeRecordIn(dir string, r *record, sync bool) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".record.tmp")
	if err := writeFile(tmp, b, os.O_TRUNC, sync); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "record.json"))
}

// writeSynced writes b to a new or truncated file (flag: os.O_EXCL or
// os.O_TRUNC) and flushes it to disk before it is closed.
func writeSynced(path string, b []byte, flag int) error { return writeFile(path, b, flag, true) }

func writeFile(path string, b []byte, flag int, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if werr == nil && sync {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

// records reads every container record, clearing what crashes left.
func (d *Driver) records() ([]*record, error) { return d.listRecords(false) }

// listRecords is records; indexed serves unchanged records from the
// record index (index.go), for Observe only: the fields Observe reads
// survive the index's gob round trip exactly, but gob turns an empty
// slice into nil, and an empty Entrypoint is not a nil one (it clears the
// image's), so a record used for anything else comes from its file.
func (d *Driver) listRecords(indexed bool) ([]*record, error) {
	start := time.Now()
	ents, err := os.ReadDir(d.containersDir())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		switch {
		case !e.IsDir():
			if isIndexTmp(e.Name()) {
				d.clearIndexTmp(e)
			}
		case validID(e.Name()):
			ids = append(ids, e.Name())
		case strings.HasPrefix(e.Name(), gonePrefix) || strings.HasPrefix(e.Name(), newPrefix) || strings.HasPrefix(e.Name(), prepPrefix):
			d.clearLeftover(e)
		}
	}
	if hasNew(ents) {
		d.clearNew()
	}
	var ix map[string]indexEntry
	if indexed {
		ix = d.loadIndex()
	}
	recs := make([]*record, len(ids))
	files := make([]fileID, len(ids))
	errs := make([]error, len(ids))
	inParallel(len(ids), func(i int) { recs[i], files[i], errs[i] = d.readIndexed(ids[i], ix) })
	out := make([]*record, 0, len(ids))
	next := make(map[string]indexEntry, len(ids))
	changed := false
	for i, r := range recs {
		if errs[i] == nil && indexable(files[i], start) {
			next[ids[i]] = indexEntry{File: files[i], Rec: observedPart(r)}
			if e, ok := ix[ids[i]]; !ok || e.File != files[i] {
				changed = true
			}
		}
		if errors.Is(errs[i], driver.ErrNotFound) {
			// No record: a directory of the old layout that a
			// crash left between mkdir and the record, or a
			// removal cut short.
			if e, err := os.Stat(d.containerDir(ids[i])); err == nil && time.Since(e.ModTime()) > leftoverAge {
				os.RemoveAll(d.containerDir(ids[i]))
			}
			continue
		}
		if errs[i] != nil {
			return nil, errs[i]
		}
		out = append(out, r)
	}
	if indexed && (changed || len(next) != len(ix)) {
		d.saveIndex(next)
	}
	return out, nil
}

// inParallel runs fn(0..n-1) on a few goroutines: reading 50 records and
// runtime states one after the other waits on the disk 100 times in a
// row, which is most of what a no-op up costs.
//
// fn(0) runs first, alone: in a fresh process the first JSON decode of a
// type builds encoding/json's description of it (and of every type
// beneath), and eight goroutines starting at once each built their own
// (cachedTypeFields was ~4 % of the CPU of a recreate).
func inParallel(n int, fn func(i int)) {
	workers := min(n-1, 8)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	fn(0)
	var next atomic.Int64
	next.Store(1)
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

// nameTaken tells whether another container than except has name. The
// caller holds lockNames. The names are kept in memory between calls (a
// create checked every record, so an up of N services read N² records)
// and read again from the records when another process added a name
// since: every addition rewrites the generation file under the lock.
// Removals do not, so a name the index still has is checked against its
// record.
func (d *Driver) nameTaken(name, except string) (bool, error) {
	gen, err := d.namesGen()
	if err != nil {
		return false, err
	}
	if d.index == nil || d.index.gen != gen {
		if err := d.loadNames(gen); err != nil {
			return false, err
		}
	}
	id, ok := d.index.names[name]
	if !ok || id == except {
		return false, nil
	}
	if r, err := d.readRecord(id); err == nil && r.Name == name {
		return true, nil
	}
	// Gone or renamed since the index was read: read it again.
	if err := d.loadNames(gen); err != nil {
		return false, err
	}
	id, ok = d.index.names[name]
	return ok && id != except, nil
}

// nameIndex is the name → id map of every container, as of gen.
type nameIndex struct {
	gen   string
	names map[string]string
}

// loadNames reads the names through the record index (names and ids are
// in what it keeps): a create after any other change of the names read
// and decoded every record, 3 to 5 ms of a recreate.
func (d *Driver) loadNames(gen string) error {
	recs, err := d.listRecords(true)
	if err != nil {
		return err
	}
	idx := &nameIndex{gen: gen, names: make(map[string]string, len(recs))}
	for _, r := range recs {
		idx.names[r.Name] = r.ID
	}
	d.index = idx
	return nil
}

// seedNames keeps, for the next nameTaken, the names of recs: every
// record, listed after the names' generation read gen (without the lock:
// an addition commits its record before it changes the generation, so a
// listing after the read has every name that generation counts, and one
// made since changes it, which nameTaken sees). An observation lists them
// all anyway, and a recreate's rename aside, right after, listed them
// again for its check (1.5 to 3 ms of the recreate).
func (d *Driver) seedNames(gen string, recs []*record) {
	if gen == "" {
		return
	}
	idx := &nameIndex{gen: gen, names: make(map[string]string, len(recs))}
	for _, r := range recs {
		idx.names[r.Name] = r.ID
	}
	d.names.Lock()
	d.index = idx
	d.names.Unlock()
}

// peekNamesGen is the names' generation, "" when it cannot be read (or
// none was written yet), read without the lock.
func (d *Driver) peekNamesGen() string {
	b, err := os.ReadFile(d.namesGenPath())
	if err != nil {
		return ""
	}
	return string(b)
}

func (d *Driver) namesGenPath() string { return filepath.Join(d.containersDir(), ".names.gen") }

// namesGen reads the generation of the names (made when missing); the
// caller holds lockNames.
func (d *Driver) namesGen() (string, error) {
	b, err := os.ReadFile(d.namesGenPath())
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(b) == 0) {
		return d.bumpNames()
	}
	return string(b), err
}

// bumpNames writes a new generation; the caller holds lockNames. Not
// forced to disk: after a power loss every process starts with no index.
// Overwritten in place (the same length every time), not truncated: on
// ext4 a truncate-and-rewrite flushes the file on close, like an fsync.
func (d *Driver) bumpNames() (string, error) {
	gen := newID()
	f, err := os.OpenFile(d.namesGenPath(), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return "", err
	}
	_, werr := f.WriteAt([]byte(gen), 0)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", werr
	}
	return gen, nil
}

// nameAdded records in the index, and for other processes in the
// generation, that container id now has name; the caller holds lockNames.
func (d *Driver) nameAdded(name, id string) error {
	gen, err := d.bumpNames()
	if err != nil {
		d.index = nil
		return err
	}
	if d.index != nil {
		for n, i := range d.index.names {
			if i == id {
				delete(d.index.names, n)
			}
		}
		d.index.names[name] = id
		d.index.gen = gen
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
