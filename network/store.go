package network

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The allocation state lives in two places under the state directory:
//
//   - state.json holds the networks (and, in roots written by an older
//     berth, the endpoints too: the first locked mutation moves them out).
//     It changes rarely, under the allocation lock, and is written with an
//     fsync: it holds the subnets a network keeps across reboots.
//   - endpoints/<id>.json holds one container's endpoint record, replaced
//     atomically by rename. Attaches and detaches of different containers
//     write different files, so they neither serialise on one file nor
//     rewrite every other container's record. These files are not forced
//     to disk: a rename survives a SIGKILL (it is in the page cache), and
//     a power loss takes with it everything such a record describes (the
//     namespace under /run, its veths, the running container), so a
//     record lost or torn by one is treated as absent: the next attach
//     allocates again and the links it named are gone anyway.
//
// gen is rewritten (with a random token) after every endpoint change, so
// that a reader (the DNS responder) knows when to reload without listing
// and statting every record.
const (
	stateFile    = "state.json"
	endpointsDir = "endpoints"
	genFile      = "gen"
)

// lockState takes the exclusive lock that serialises every mutation of
// state.json and every address or port allocation, across goroutines
// (separate open file descriptions) and processes. The returned function
// releases it.
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

// lockRemovable takes an exclusive flock on path like lockFile, but
// tolerates the file being removed by its holder (unlock(true)): a waiter
// that locked a removed file notices it and locks the new one.
func lockRemovable(path string) (unlock func(remove bool), err error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return func(remove bool) {
				if remove {
					os.Remove(path)
				}
				f.Close()
			}, nil
		}
		f.Close() // removed (or replaced) while we waited: take the current one
	}
}

// networksFile is state.json: networks, and the endpoints an older berth
// kept there.
type networksFile struct {
	Networks  map[string]*NetworkInfo    `json:"networks"`
	Endpoints map[string]*endpointRecord `json:"endpoints,omitempty"`
}

// loadNetworks reads state.json; a missing file is no network. legacy are
// endpoints an older berth recorded there.
func loadNetworks(dir string) (nets map[string]*NetworkInfo, legacy map[string]*endpointRecord, err error) {
	nets, legacy, _, err = loadNetworksRaw(dir)
	return nets, legacy, err
}

// loadNetworksRaw is loadNetworks plus the bytes read (nil: no file).
func loadNetworksRaw(dir string) (map[string]*NetworkInfo, map[string]*endpointRecord, []byte, error) {
	var f networksFile
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, nil, err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
		}
	}
	if f.Networks == nil {
		f.Networks = map[string]*NetworkInfo{}
	}
	return f.Networks, f.Endpoints, b, nil
}

func endpointPath(dir, id string) string {
	return filepath.Join(dir, endpointsDir, id+".json")
}

// readEndpoint reads one container's record; nil when it has none (or an
// unreadable one, which only a power loss leaves: see above).
func readEndpoint(dir, id string) (*endpointRecord, []byte, error) {
	b, err := os.ReadFile(endpointPath(dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	r := decodeEndpoint(id, b)
	if r == nil {
		return nil, nil, nil
	}
	return r, b, nil
}

// decoded keeps, per state directory, the last bytes read of each record
// and what they decoded to: an attach reads every record (addresses are
// chosen against all of them), so an up of N containers reads N² of them,
// and decoding is half that cost. Validated by the whole content, it
// cannot serve a stale record. Callers get a copy of the struct; the
// slices are shared and never changed in place (records are replaced).
var decoded struct {
	sync.Mutex
	dirs map[string]map[string]decodedRecord
}

type decodedRecord struct {
	raw []byte
	rec *endpointRecord
}

// loadEndpoints reads every endpoint record, with the bytes each was read
// from (for saveState to write only what changed).
func loadEndpoints(dir string) (map[string]*endpointRecord, map[string][]byte, error) {
	recs, raw := map[string]*endpointRecord{}, map[string][]byte{}
	ents, err := os.ReadDir(filepath.Join(dir, endpointsDir))
	if errors.Is(err, os.ErrNotExist) {
		return recs, raw, nil
	}
	if err != nil {
		return nil, nil, err
	}
	decoded.Lock()
	prev := decoded.dirs[dir]
	decoded.Unlock()
	next := make(map[string]decodedRecord, len(ents))
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(endpointPath(dir, id))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var r *endpointRecord
		if c, ok := prev[id]; ok && bytes.Equal(c.raw, b) {
			r = c.rec
		} else if r = decodeEndpoint(id, b); r == nil {
			continue
		}
		next[id] = decodedRecord{raw: b, rec: r}
		cp := *r
		recs[id], raw[id] = &cp, b
	}
	decoded.Lock()
	if decoded.dirs == nil {
		decoded.dirs = map[string]map[string]decodedRecord{}
	}
	decoded.dirs[dir] = next
	decoded.Unlock()
	return recs, raw, nil
}

// decodeEndpoint decodes record bytes; nil when they are not container
// id's record (torn by a power loss: see above).
func decodeEndpoint(id string, b []byte) *endpointRecord {
	var r endpointRecord
	if json.Unmarshal(b, &r) != nil || r.Endpoint.ID != id {
		return nil
	}
	return &r
}

// loadState reads the whole allocation state: a consistent view under the
// allocation lock, and without it one where each record is whole (writes
// are atomic renames).
func loadState(dir string) (*diskState, error) {
	st, _, err := loadStateRaw(dir)
	return st, err
}

// loadStateRaw is loadState plus the bytes it was read from: each endpoint
// file's (absent for records that still live in state.json), under "",
// state.json's.
func loadStateRaw(dir string) (*diskState, map[string][]byte, error) {
	nets, legacy, b, err := loadNetworksRaw(dir)
	if err != nil {
		return nil, nil, err
	}
	eps, raw, err := loadEndpoints(dir)
	if err != nil {
		return nil, nil, err
	}
	raw[""] = b
	for id, r := range legacy {
		if _, ok := eps[id]; !ok && r != nil {
			eps[id] = r
		}
	}
	return &diskState{Networks: nets, Endpoints: eps}, raw, nil
}

// saveState writes what changed in st since it was loaded: state.json when
// its networks changed (or it still carries endpoints), the record of
// each endpoint st holds another record for than prev (records are never
// changed in place), and removes the records of endpoints st no longer
// has. raw names the endpoints that have their own file (those still in
// state.json do not, and get one).
func saveState(dir string, st *diskState, prev map[string]*endpointRecord, raw map[string][]byte) error {
	b, err := json.Marshal(networksFile{Networks: st.Networks})
	if err != nil {
		return err
	}
	// Endpoints first: state.json may still hold legacy copies, which
	// must stay until each has its own file.
	changed := false
	for id, r := range st.Endpoints {
		if _, ok := raw[id]; ok && prev[id] == r {
			continue
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if bytes.Equal(raw[id], b) {
			continue
		}
		if err := writeFileRenamed(endpointPath(dir, id), b, 0o644); err != nil {
			return err
		}
		changed = true
	}
	for id := range raw {
		if _, ok := st.Endpoints[id]; !ok && id != "" {
			if err := os.Remove(endpointPath(dir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			changed = true
		}
	}
	// Compared with what was read under the same lock: no reread.
	if cur, ok := raw[""]; !ok || !bytes.Equal(cur, b) {
		if err := writeFileAtomic(filepath.Join(dir, stateFile), b, 0o644); err != nil {
			return err
		}
	}
	if changed {
		bumpGen(dir)
	}
	return nil
}

// writeEndpoint replaces one container's record (when it changed) and
// tells readers.
func writeEndpoint(dir string, r *endpointRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if cur, err := os.ReadFile(endpointPath(dir, r.Endpoint.ID)); err == nil && bytes.Equal(cur, b) {
		return nil
	}
	if err := writeFileRenamed(endpointPath(dir, r.Endpoint.ID), b, 0o644); err != nil {
		return err
	}
	bumpGen(dir)
	return nil
}

// removeEndpoint removes one container's record; missing is nil.
func removeEndpoint(dir, id string) error {
	err := os.Remove(endpointPath(dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		bumpGen(dir)
	}
	return err
}

// bumpGen writes a fresh random token to gen: best effort, since a reader
// that misses one still reloads on its poll.
func bumpGen(dir string) {
	var tok [16]byte
	rand.Read(tok[:])
	f, err := os.OpenFile(filepath.Join(dir, genFile), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	f.WriteAt([]byte(fmt.Sprintf("%x\n", tok)), 0)
	f.Close()
}

// stateStamp changes whenever the allocation state does: a reader that
// saw the same stamp before loading has nothing new to load.
type stateStamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
	gen          string
}

// readStamp reads the stamp; read it before loading the state, so that a
// change racing the load is seen as a new stamp next time.
func readStamp(dir string) (stateStamp, error) {
	var s stateStamp
	var fi unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, stateFile), &fi); err != nil && !errors.Is(err, unix.ENOENT) {
		return s, err
	}
	s.dev, s.ino, s.size, s.mtime, s.ctime = uint64(fi.Dev), fi.Ino, fi.Size, fi.Mtim, fi.Ctim
	b, _ := os.ReadFile(filepath.Join(dir, genFile))
	s.gen = string(b)
	return s, nil
}

// writeFileAtomic leaves either the old or the new content at path, never a
// torn file, even across a crash.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeFile(path, data, mode, true)
}

// writeFileRenamed is writeFileAtomic without the fsync: the old or new
// content across a SIGKILL, not across a power loss.
func writeFileRenamed(path string, data []byte, mode os.FileMode) error {
	return writeFile(path, data, mode, false)
}

func writeFile(path string, data []byte, mode os.FileMode, sync bool) error {
	tmp, err := createTemp(path, mode)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp, err = createTemp(path, mode)
	}
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// createTemp makes a new file beside path (a random name, O_EXCL) with
// mode, set at creation (less the umask, which berth runs with at 022 or
// less for these modes) rather than by a chmod afterwards.
func createTemp(path string, mode os.FileMode) (*os.File, error) {
	for {
		var r [8]byte
		rand.Read(r[:])
		name := filepath.Join(filepath.Dir(path), fmt.Sprintf(".tmp-%s-%x", filepath.Base(path), r))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, err
	}
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
