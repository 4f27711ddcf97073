package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// LogEntry is one line of container output as stored: the JSON-lines
// format of Docker's json-file driver, so its tools read berth's logs.
type LogEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

const (
	defaultLogMaxSize  = 10 << 20
	defaultLogMaxFiles = 3
)

// logWriter appends entries to path, rotating it to path.1 .. path.N-1
// when it would grow past maxSize. Safe for the two stream pumps at once.
type logWriter struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
}

func openLogWriter(path string, maxSize int64, maxFiles int) (*logWriter, error) {
	if maxSize <= 0 {
		maxSize = defaultLogMaxSize
	}
	if maxFiles <= 0 {
		maxFiles = defaultLogMaxFiles
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &logWriter{path: path, maxSize: maxSize, maxFiles: maxFiles, f: f, size: fi.Size()}, nil
}

func (w *logWriter) write(stream string, line []byte) error {
	b, err := json.Marshal(LogEntry{Log: string(line), Stream: stream, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	return err
}

func (w *logWriter) rotate() error {
	w.f.Close()
	for i := w.maxFiles - 1; i >= 1; i-- {
		src := w.path
		if i > 1 {
			src = w.path + "." + strconv.Itoa(i-1)
		}
		if i == w.maxFiles-1 {
			os.Remove(w.path + "." + strconv.Itoa(i))
		}
		os.Rename(src, w.path+"."+strconv.Itoa(i))
	}
	if w.maxFiles == 1 {
		os.Remove(w.path)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	return nil
}

func (w *logWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.f.Close()
}

// pump copies one stream into the log, a line per entry; a partial line
// is flushed when it reaches 16 KiB, as Docker does.
func (w *logWriter) pump(stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, 16<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			w.write(stream, line)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// LogOptions select what Logs returns.
type LogOptions struct {
	Follow bool
	Since  time.Time
	Tail   int // last N entries (0: all)
}

// Logs streams a container's log entries to fn until the log ends or,
// with Follow, until ctx is done or the container is deleted.
func (r *Runtime) Logs(ctx context.Context, id string, o LogOptions, fn func(LogEntry) error) error {
	s, err := r.readState(id)
	if err != nil {
		return err
	}
	path := r.logPath(s)
	var entries []LogEntry
	files := s.Options.LogMaxFiles
	if files <= 0 {
		files = defaultLogMaxFiles
	}
	for i := files - 1; i >= 1; i-- {
		entries = append(entries, readLogFile(path+"."+strconv.Itoa(i), o.Since)...)
	}
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) && !o.Follow {
			return emit(entries, o.Tail, fn)
		}
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	entries = append(entries, readEntries(br, o.Since)...)
	if err := emit(entries, o.Tail, fn); err != nil || !o.Follow {
		return err
	}
	return followLog(ctx, r, id, path, f, br, fn)
}

func followLog(ctx context.Context, r *Runtime, id, path string, f *os.File, br *bufio.Reader, fn func(LogEntry) error) error {
	var partial []byte
	for {
		line, err := br.ReadBytes('\n')
		partial = append(partial, line...)
		if err == nil {
			var e LogEntry
			if json.Unmarshal(partial, &e) == nil {
				if err := fn(e); err != nil {
					return err
				}
			}
			partial = partial[:0]
			continue
		}
		// At the end: stop if the container is gone for good, reopen if
		// the file was rotated under us, else wait for more.
		st, serr := r.State(id)
		if serr != nil {
			return nil
		}
		if fi, err := os.Stat(path); err == nil {
			cur, _ := f.Stat()
			if cur != nil && !os.SameFile(fi, cur) {
				nf, err := os.Open(path)
				if err == nil {
					f.Close()
					f, br, partial = nf, bufio.NewReader(nf), partial[:0]
					defer nf.Close()
					continue
				}
			}
		}
		if st.Status == StatusStopped && st.Options.Restart.Name == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func emit(entries []LogEntry, tail int, fn func(LogEntry) error) error {
	if tail > 0 && len(entries) > tail {
		entries = entries[len(entries)-tail:]
	}
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func readLogFile(path string, since time.Time) []LogEntry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return readEntries(bufio.NewReader(f), since)
}

// readEntries reads complete lines only, leaving a partial last line for
// a follower to finish.
func readEntries(br *bufio.Reader, since time.Time) []LogEntry {
	var out []LogEntry
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if len(line) > 0 {
				// Put nothing back: callers that follow re-read from here.
				var e LogEntry
				if json.Unmarshal(line, &e) == nil && !e.Time.Before(since) {
					out = append(out, e)
				}
			}
			return out
		}
		var e LogEntry
		if json.Unmarshal(line, &e) != nil || e.Time.Before(since) {
			continue
		}
		out = append(out, e)
	}
}

func (r *Runtime) logPath(s *State) string {
	if s.Options.LogPath != "" {
		return s.Options.LogPath
	}
	return fmt.Sprintf("%s/%s/container.log", r.root, s.ID)
}
