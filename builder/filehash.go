package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fileHashes remembers the content digest of context files by identity and
// change times, so a cached build does not read every file again. A file
// is trusted only if its ctime is more than a couple of seconds older than
// the moment it was hashed: a write in the same timestamp tick as the hash
// could otherwise go unnoticed.
type fileHashes struct {
	mu      sync.Mutex
	path    string
	entries map[string]fileHash
	dirty   bool
}

type fileHash struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64
	Digest       string
}

var trustAge = 2 * time.Second

func loadFileHashes(dir, ctxDir string) *fileHashes {
	sum := sha256.Sum256([]byte(ctxDir))
	fh := &fileHashes{path: filepath.Join(dir, hex.EncodeToString(sum[:12])+".json"), entries: map[string]fileHash{}}
	if data, err := os.ReadFile(fh.path); err == nil {
		json.Unmarshal(data, &fh.entries)
	}
	return fh
}

func statHash(st *unix.Stat_t) fileHash {
	return fileHash{Dev: st.Dev, Ino: st.Ino, Size: st.Size,
		Mtime: unix.TimespecToNsec(st.Mtim), Ctime: unix.TimespecToNsec(st.Ctim)}
}

// digest returns rel's content digest, from memory when the file is
// unchanged.
func (fh *fileHashes) digest(fs *srcFS, rel string, st *unix.Stat_t, buf []byte) (string, error) {
	key := statHash(st)
	if fh != nil {
		fh.mu.Lock()
		e, ok := fh.entries[rel]
		fh.mu.Unlock()
		if ok && e.Digest != "" {
			key.Digest = e.Digest
			if e == key {
				return e.Digest, nil
			}
		}
	}
	now := time.Now()
	h := sha256.New()
	if err := hashFile(fs, rel, h, buf); err != nil {
		return "", err
	}
	d := hex.EncodeToString(h.Sum(nil))
	if fh != nil && now.Sub(time.Unix(0, key.Ctime)) > trustAge {
		key.Digest = d
		fh.mu.Lock()
		fh.entries[rel], fh.dirty = key, true
		fh.mu.Unlock()
	}
	return d, nil
}

func hashFile(fs *srcFS, rel string, w io.Writer, buf []byte) error {
	f, err := fs.open(rel, unix.O_RDONLY, true)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(w, f, buf)
	return err
}

// save writes the table back when it changed; a lost write only costs
// hashing again.
func (fh *fileHashes) save() {
	if fh == nil {
		return
	}
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if !fh.dirty {
		return
	}
	data, err := json.Marshal(fh.entries)
	if err != nil {
		return
	}
	os.MkdirAll(filepath.Dir(fh.path), 0o700)
	tmp, err := os.CreateTemp(filepath.Dir(fh.path), ".tmp-")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil && cerr == nil {
		if os.Rename(tmp.Name(), fh.path) == nil {
			fh.dirty = false
			return
		}
	}
	os.Remove(tmp.Name())
}
