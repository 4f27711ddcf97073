package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/berth-dev/berth/state"
)

// HoldStore keeps a project's holds: the services a Loop rolled back,
// each with the HoldKey of the desired state that failed. A Loop reads it
// afresh on every pass, under the project lock, and writes it only when a
// hold begins or ends; it is the one thing a controller decided that the
// containers cannot say (see docs/reconciler.md, "Holds").
type HoldStore interface {
	LoadHolds() (map[string]string, error)
	// SaveHolds replaces the holds; an empty map removes them all.
	SaveHolds(map[string]string) error
}

// holdFile is the record a FileLock keeps its project's holds in:
// <root>/projects/<name>.holds.json beside <name>.lock.
func holdFile(lock string) string { return strings.TrimSuffix(lock, ".lock") + ".holds.json" }

type holdRecord struct {
	// Held maps a service to the HoldKey of the desired state it was
	// rolled back from.
	Held map[string]string `json:"held"`
}

// LoadHolds implements HoldStore: a FileLock keeps its project's holds in
// a small record beside the lock file, so that every controller of the
// project (watch, sync, an attached up) and the next one find them.
func (l fileLock) LoadHolds() (map[string]string, error) {
	b, err := os.ReadFile(holdFile(string(l)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r holdRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", holdFile(string(l)), err)
	}
	return r.Held, nil
}

// SaveHolds implements HoldStore; the record is replaced by a rename, so
// a reader never sees half of it.
func (l fileLock) SaveHolds(held map[string]string) error {
	path := holdFile(string(l))
	if len(held) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(holdRecord{Held: held})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// memHolds is a HoldStore in memory: the holds last as long as the Loop.
type memHolds struct {
	mu   sync.Mutex
	held map[string]string
}

func (m *memHolds) LoadHolds() (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.held), nil
}

func (m *memHolds) SaveHolds(held map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held = maps.Clone(held)
	return nil
}

// holds is the Loop's HoldStore: Holds, else the Locker's, else memory.
func (l *Loop) holds() HoldStore {
	if l.Holds != nil {
		return l.Holds
	}
	if h, ok := l.Locker.(HoldStore); ok {
		return h
	}
	return &l.mem
}

// hold records that services names were rolled back from their desired
// state in want (as observed in obs).
func (l *Loop) hold(want *state.Desired, obs *state.Observed, names []string) error {
	s := l.holds()
	held, err := s.LoadHolds()
	if err != nil {
		held = nil // a record that cannot be read is replaced
	}
	if held == nil {
		held = map[string]string{}
	}
	for _, n := range names {
		held[n] = HoldKey(want.Services[n], obs)
	}
	return s.SaveHolds(held)
}

// holding returns the holds still in force: those whose service's desired
// state has not changed since its rollback. The others end (and leave the
// record).
func (l *Loop) holding(want *state.Desired, obs *state.Observed) (map[string]string, error) {
	s := l.holds()
	held, err := s.LoadHolds()
	if err != nil {
		return nil, fmt.Errorf("holds: %w", err)
	}
	changed := false
	for name, key := range held {
		if svc := want.Services[name]; svc == nil || HoldKey(svc, obs) != key {
			delete(held, name)
			changed = true
		}
	}
	if changed {
		if err := s.SaveHolds(held); err != nil {
			return nil, fmt.Errorf("holds: %w", err)
		}
	}
	if len(held) == 0 {
		return nil, nil
	}
	return held, nil
}

// release ends the holds of services (all of them when nil): an explicit
// request retries them.
func (l *Loop) release(services map[string]bool) error {
	s := l.holds()
	held, err := s.LoadHolds()
	if err != nil || len(held) == 0 {
		if err != nil {
			return s.SaveHolds(nil) // unreadable: the request retries everything anyway
		}
		return nil
	}
	n := len(held)
	for name := range held {
		if services == nil || services[name] {
			delete(held, name)
		}
	}
	if len(held) == n {
		return nil
	}
	if err := s.SaveHolds(held); err != nil {
		return fmt.Errorf("holds: %w", err)
	}
	return nil
}

// scopeOf is the set of services an explicit request names (nil: all).
func scopeOf(o Options) map[string]bool {
	if len(o.Services) == 0 {
		return nil
	}
	m := make(map[string]bool, len(o.Services))
	for _, s := range o.Services {
		m[s] = true
	}
	return m
}
