package gitops

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Results of an apply, as recorded.
const (
	ResultApplying   = "applying"    // started, not finished (the controller died if it stays so)
	ResultHealthy    = "healthy"     // applied and every service became healthy
	ResultFailed     = "failed"      // did not load, build or become healthy: rolled back
	ResultRolledBack = "rolled-back" // a pinned earlier revision applied by berth sync rollback
)

// Entry is one applied revision in the history.
type Entry struct {
	Revision string    `json:"revision"`
	Subject  string    `json:"subject,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Result   string    `json:"result"`
	Error    string    `json:"error,omitempty"`
	Pinned   bool      `json:"pinned,omitempty"`
	// Changes are the plan's lines (what was created, recreated, removed).
	Changes []string `json:"changes,omitempty"`
	// PassSeconds is the time the reconciler spent applying the plan
	// (images, stops, creates, starts): the containers' own share of the
	// apply, the rest being fetch, checkout, load and health checks.
	PassSeconds float64 `json:"pass_seconds,omitempty"`
}

// Record is everything the controller must not forget across restarts.
// It is rewritten whole and atomically (write, fsync, rename), so a
// SIGKILL leaves either the old or the new record, never a torn one.
type Record struct {
	URL     string `json:"url"`
	Ref     string `json:"ref"`
	Path    string `json:"path"`
	Project string `json:"project,omitempty"`
	// Head is the newest commit seen on the remote.
	Head string `json:"head,omitempty"`
	// Applied is the revision whose project runs, last known healthy.
	Applied string `json:"applied,omitempty"`
	// Fingerprint of Applied over Inputs (see Repo.Fingerprint).
	Fingerprint map[string]string `json:"fingerprint,omitempty"`
	Inputs      []string          `json:"inputs,omitempty"`
	// Failed is the newest revision that failed: it is not retried until
	// the head moves past it.
	Failed string `json:"failed,omitempty"`
	// Unchanged is the newest head whose project equals Applied's (a
	// commit elsewhere in the repository): Synced without an apply.
	Unchanged string `json:"unchanged,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// FetchError is why the last poll of the remote failed ("" once one
	// succeeds again).
	FetchError string    `json:"fetch_error,omitempty"`
	Pin        *Pin      `json:"pin,omitempty"`
	Updated    time.Time `json:"updated"`
	History    []Entry   `json:"history"`
}

// Pin holds the controller on an older revision until the remote moves
// past Head (the head when the pin was set) or the pin is removed.
type Pin struct {
	Revision string    `json:"revision"`
	Head     string    `json:"head"`
	Since    time.Time `json:"since"`
}

// maxHistory bounds the record; the oldest entries go first.
const maxHistory = 500

const (
	recordFile = "record.json"
	pinFile    = "pin.json"
)

// LoadRecord reads the record of the sync under dir; a missing one is
// empty.
func LoadRecord(dir string) (*Record, error) {
	var r Record
	if err := readJSON(filepath.Join(dir, recordFile), &r); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &Record{}, nil
		}
		return nil, err
	}
	return &r, nil
}

// Save writes the record atomically.
func (r *Record) Save(dir string) error {
	r.Updated = time.Now().UTC()
	if n := len(r.History); n > maxHistory {
		r.History = r.History[n-maxHistory:]
	}
	return writeJSON(filepath.Join(dir, recordFile), r)
}

// Last returns the newest history entry, or nil.
func (r *Record) Last() *Entry {
	if len(r.History) == 0 {
		return nil
	}
	return &r.History[len(r.History)-1]
}

// PinRequest is what `berth sync rollback` leaves for the controller: a
// separate file, so that the CLI never races the controller's own writes
// of the record.
type PinRequest struct {
	Revision string    `json:"revision"` // "" unpins
	At       time.Time `json:"at"`
}

// WritePinRequest asks the controller under dir to pin rev ("" unpins).
func WritePinRequest(dir, rev string) error {
	return writeJSON(filepath.Join(dir, pinFile), PinRequest{Revision: rev, At: time.Now().UTC()})
}

// takePinRequest returns and removes a pending request.
func takePinRequest(dir string) (*PinRequest, error) {
	p := filepath.Join(dir, pinFile)
	var req PinRequest
	if err := readJSON(p, &req); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return &req, os.Remove(p)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// the rename itself must survive a crash too
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
