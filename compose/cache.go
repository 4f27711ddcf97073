package compose

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/state"
)

// cacheFormat changes whenever the cached layout or the conversion changes
// in a way the executable's identity would not reveal (it always does in a
// release; this guards development builds run from `go run`).
const cacheFormat = "berth-compose-cache-v1"

// Entries are gob: decoding one is several times faster than JSON, and
// the cache is read on every command.
const entrySuffix = ".gob"

func init() {
	// x- extensions decode from YAML into these behind interface values
	gob.Register(map[string]any{})
	gob.Register([]any{})
}

// maxCacheEntries bounds the cache directory; each distinct environment or
// flag set is one entry.
const maxCacheEntries = 32

// racyWindow (a variable for tests): a file changed this close to (or after) the start of a load
// may have been read before or after the change, so the result is not
// cached. It covers the coarse clock the kernel stamps files with.
var racyWindow = 50 * time.Millisecond

// Loaded is a desired state and what the user must be told about it.
type Loaded struct {
	Desired       *state.Desired
	Unimplemented []string // see Warning
	Cached        bool     // served from the cache
}

// LoadDesired loads the project and converts it, serving the result from
// Options.CacheDir when nothing it was computed from has changed: the
// options, the environment, the berth executable, and every file read or
// probed (compose files, include and extends targets, .env and env_file
// files, config and secret files, absent discovery candidates). Files are
// validated by stat (size, mtime, ctime, inode); when only the times moved,
// by content hash. Reading stdin ("-") bypasses the cache.
func LoadDesired(ctx context.Context, o Options) (*Loaded, error) {
	if o.CacheDir == "" || slices.Contains(o.Files, "-") {
		return loadFresh(ctx, o, "")
	}
	key, err := cacheKey(o)
	if err != nil {
		return loadFresh(ctx, o, "")
	}
	l, stale := readCache(o, key)
	if l != nil {
		return l, nil
	}
	if stale != "" && o.OnStale != nil {
		o.OnStale(stale)
	}
	return loadFresh(ctx, o, key)
}

func loadFresh(ctx context.Context, o Options, key string) (*Loaded, error) {
	start := time.Now()
	p, err := Load(ctx, o)
	if err != nil {
		return nil, err
	}
	d, err := p.Desired()
	if err != nil {
		return nil, err
	}
	l := &Loaded{Desired: d, Unimplemented: p.Unimplemented}
	if key != "" {
		// the cache only saves time: failing to write it is not an error
		_ = writeCache(o, key, start, p.Inputs, l)
	}
	return l, nil
}

type cacheEntry struct {
	Format        string
	Inputs        []stamp
	Env           envDeps
	Desired       *state.Desired
	Unimplemented []string
}

// stamp identifies one input path as it was when the entry was written.
type stamp struct {
	Path   string
	Exists bool
	Size   int64
	Mtime  int64
	Ctime  int64
	Ino    uint64
	Dev    uint64
	Sum    string // sha256 of the content
}

func cacheKey(o Options) (string, error) {
	cwd, err := o.dir()
	if err != nil {
		return "", err
	}
	exe, err := executableID()
	if err != nil {
		return "", err
	}
	env := keyEnv(o.environ())
	h := sha256.New()
	enc := json.NewEncoder(h)
	err = enc.Encode([]any{cacheFormat, exe, cwd, o.Files, o.ProjectName, o.ProjectDirectory,
		o.Profiles, o.EnvFiles, o.NoInterpolate, env, os.Getenv("COMPOSE_DISABLE_ENV_FILE")})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// executableID changes whenever berth is rebuilt, so that a new
// conversion never serves an old one's output.
var executableID = sync.OnceValues(func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d:%d", exe, fi.Size(), fi.ModTime().UnixNano()), nil
})

// readCache returns the entry for key when it still matches its inputs;
// else, when there is one, the project it names (stale).
func readCache(o Options, key string) (l *Loaded, stale string) {
	f, err := os.Open(filepath.Join(o.CacheDir, key+entrySuffix))
	if err != nil {
		return nil, ""
	}
	defer f.Close()
	var e cacheEntry
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&e); err != nil || e.Format != cacheFormat || e.Desired == nil {
		return nil, ""
	}
	for _, s := range e.Inputs {
		if !s.valid() {
			return nil, e.Desired.Project
		}
	}
	if !e.Env.valid(o.environ()) {
		return nil, e.Desired.Project
	}
	return &Loaded{Desired: e.Desired, Unimplemented: e.Unimplemented, Cached: true}, ""
}

func statOf(path string) (stamp, error) {
	s := stamp{Path: path}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	s.Exists = true
	s.Size = fi.Size()
	s.Mtime = fi.ModTime().UnixNano()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.Ctime = st.Ctim.Nano()
		s.Ino = st.Ino
		s.Dev = uint64(st.Dev)
	}
	return s, nil
}

func (s stamp) valid() bool {
	now, err := statOf(s.Path)
	if err != nil || now.Exists != s.Exists {
		return false
	}
	if !s.Exists {
		return true
	}
	if now.Size != s.Size {
		return false
	}
	if now.Mtime == s.Mtime && now.Ctime == s.Ctime && now.Ino == s.Ino && now.Dev == s.Dev {
		return true
	}
	// touched or rewritten with the same size: the content decides
	sum, err := fileSum(s.Path)
	return err == nil && sum == s.Sum
}

func fileSum(path string) (string, error) {
	b, err := readRegular(path)
	if err != nil {
		return "", err
	}
	return sum(b), nil
}

// readRegular reads a regular file; anything else (a FIFO, a device) reads
// as empty rather than blocking.
func readRegular(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, err
	}
	return os.ReadFile(path)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeCache(o Options, key string, start time.Time, inputs []string, l *Loaded) error {
	dir := o.CacheDir
	e := cacheEntry{Format: cacheFormat, Desired: l.Desired, Unimplemented: l.Unimplemented}
	racy := start.Add(-racyWindow).UnixNano()
	tokens := map[string]bool{}
	for _, p := range inputs {
		s, err := statOf(p)
		if err != nil {
			return err
		}
		if s.Exists {
			if s.Mtime >= racy || s.Ctime >= racy {
				return fmt.Errorf("%s changed while loading", p)
			}
			content, err := readRegular(p)
			if err != nil {
				return err
			}
			s.Sum = sum(content)
			addTokens(tokens, content)
		}
		e.Inputs = append(e.Inputs, s)
	}
	e.Env = newEnvDeps(tokens, o.environ())
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(e); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, key+entrySuffix), buf.Bytes()); err != nil {
		return err
	}
	prune(dir)
	return nil
}

func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// prune keeps the newest maxCacheEntries entries.
func prune(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) <= maxCacheEntries {
		return
	}
	type aged struct {
		name string
		mod  time.Time
	}
	var all []aged
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && filepath.Ext(e.Name()) == entrySuffix {
			all = append(all, aged{e.Name(), fi.ModTime()})
		}
	}
	slices.SortFunc(all, func(a, b aged) int { return b.mod.Compare(a.mod) })
	for _, a := range all[min(len(all), maxCacheEntries):] {
		os.Remove(filepath.Join(dir, a.name))
	}
}

// RemoveCached removes the cached desired states of project from cacheDir
// (down -v: nothing of a removed project stays behind). Entries are keyed
// by their inputs, so each is read to learn its project; one that cannot
// be read is left to prune.
func RemoveCached(cacheDir, project string) error {
	ents, err := os.ReadDir(cacheDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if filepath.Ext(e.Name()) != entrySuffix {
			continue
		}
		path := filepath.Join(cacheDir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		var ce cacheEntry
		derr := gob.NewDecoder(bufio.NewReader(f)).Decode(&ce)
		f.Close()
		if derr != nil || ce.Desired == nil || ce.Desired.Project != project {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
