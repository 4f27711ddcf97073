package native

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// The record index (<root>/containers/.records.gob) holds, for every
// record, the part of it Observe reads (observedPart), with the identity
// of the record.json it was parsed from. Every
// command that lists containers (a no-op up, ps, down) read and
// JSON-decoded all the records: for 50 containers, 150 open/read/close and
// ~2-3 ms of decoding out of a no-op up's ~20 ms. With the index a record
// whose file is unchanged costs one stat, and all of them one read and one
// gob decode.
//
// It is a cache, never the truth: an entry is used only while the file it
// came from is the same (inode, size, mtime, ctime), so a record replaced
// (writeRecordIn renames a new file over it: a new inode), removed or
// added is read from its file. Records are never rewritten in place.
// Only a record whose file was last changed more than indexRacy before the
// listing is indexed (git's "racily clean" rule): the file times come from
// a coarse clock, and a record rewritten twice within one tick may get its
// first inode back with the same times and size; one older than the
// listing that read it cannot change without its times moving. The
// index is written in place without fsync; one that is missing, torn
// (a crash, or a listing reading it as another writes it) or of another
// format is ignored, and the next listing writes it again.
//
// The index holds no environment, command or mount of any container (the
// environment may hold secrets), so a removal need not touch it: a removed
// container's entry is never used (its file is gone) and the next listing
// that saves the index leaves it out. Removals used to delete the index
// for that reason, and the listing right after (the second observe of a
// recreate's pass) decoded every record again: ~5 ms of 50.
const (
	indexName   = ".records.gob"
	indexFormat = "berth-records-v2"
	indexTmp    = ".records-" // prefix of the temporary an older berth wrote the index to
)

// indexRacy (a variable for tests): see the rule above.
var indexRacy = time.Second

// indexable tells whether a record file read at a listing that started at
// start may be indexed.
func indexable(f fileID, start time.Time) bool {
	limit := start.Add(-indexRacy).UnixNano()
	return f.Mtime < limit && f.Ctime < limit
}

type fileID struct {
	Ino, Dev, Size uint64
	Mtime, Ctime   int64
}

func fileIDOf(st *unix.Stat_t) fileID {
	return fileID{Ino: st.Ino, Dev: st.Dev, Size: uint64(st.Size), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
}

type indexEntry struct {
	File fileID
	Rec  record
}

type recordIndex struct {
	Format  string
	Entries map[string]indexEntry
}

func (d *Driver) indexPath() string { return filepath.Join(d.containersDir(), indexName) }

// loadIndex returns the index's entries, or nil when there is no usable one.
func (d *Driver) loadIndex() map[string]indexEntry {
	b, err := os.ReadFile(d.indexPath())
	if err != nil {
		return nil
	}
	var ix recordIndex
	if gob.NewDecoder(bytes.NewReader(b)).Decode(&ix) != nil || ix.Format != indexFormat {
		return nil
	}
	return ix.Entries
}

// saveIndex replaces the index; failing to is not an error (the next
// listing reads the records again). Entries of containers removed since
// the listing read them are left out.
//
// It is written over the old one in place, then cut to its length: a
// new file (a temporary renamed over it) cost 1.5 to 5.5 ms on this
// machine's ext4, whose inode allocator skips every inode freed in the
// last minute (a recreate frees dozens), and a recreate saves it twice.
// Not truncated first: on ext4 a truncate to zero and rewrite flushes the
// file on close, like an fsync. Concurrent writers each write the whole
// index from offset 0, so the file always starts with one whole index
// (gob decodes one value and ignores a longer writer's tail); a reader
// racing a writer may read a torn one, which it ignores.
func (d *Driver) saveIndex(entries map[string]indexEntry) {
	for id := range entries {
		if _, err := os.Lstat(d.containerDir(id)); errors.Is(err, os.ErrNotExist) {
			delete(entries, id)
		}
	}
	var b bytes.Buffer
	if gob.NewEncoder(&b).Encode(recordIndex{Format: indexFormat, Entries: entries}) != nil {
		return
	}
	f, err := os.OpenFile(d.indexPath(), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.WriteAt(b.Bytes(), 0); err != nil {
		f.Truncate(0) // a torn index is ignored; an empty one too
		return
	}
	f.Truncate(int64(b.Len()))
}

// observedPart is what the index keeps of a record: what observeContainer
// and Observe's project filter read, and nothing else.
func observedPart(r *record) record {
	s := r.Spec
	return record{ID: r.ID, Name: r.Name, Created: r.Created, Started: r.Started, Spec: state.ContainerSpec{
		Project: s.Project, Service: s.Service, Number: s.Number, OneOff: s.OneOff,
		ConfigHash: s.ConfigHash, ImageDigest: s.ImageDigest, Image: s.Image,
		Labels: s.Labels, Networks: s.Networks,
	}}
}

// clearIndexTmp removes a temporary index an older berth's crash left
// (it wrote a temporary and renamed it; it held whole records, their
// environments too). None is written any more: it goes at once.
func (d *Driver) clearIndexTmp(e os.DirEntry) {
	os.Remove(filepath.Join(d.containersDir(), e.Name()))
}

func isIndexTmp(name string) bool { return strings.HasPrefix(name, indexTmp) }

// readIndexed is readRecord through the index: the entry when the file is
// the one it was parsed from, else the file, read through one descriptor
// so that the identity returned is the content's.
func (d *Driver) readIndexed(id string, ix map[string]indexEntry) (*record, fileID, error) {
	path := filepath.Join(d.containerDir(id), "record.json")
	if e, ok := ix[id]; ok {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err == nil && fileIDOf(&st) == e.File {
			r := e.Rec
			return &r, e.File, nil
		}
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fileID{}, fmt.Errorf("container %s: %w", shortID(id), driver.ErrNotFound)
	}
	if err != nil {
		return nil, fileID{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fileID{}, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fileID{}, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fileID{}, fmt.Errorf("container %s: corrupt record: %w", shortID(id), err)
	}
	return &r, fileIDOf(&st), nil
}
