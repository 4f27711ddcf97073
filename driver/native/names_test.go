package native

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// create makes a bare container record named name the way CreateContainer
// does (prepared outside the lock, committed under it).
func create(t *testing.T, d *Driver, name string) (string, error) {
	t.Helper()
	r := &record{ID: newID(), Name: name, Spec: state.ContainerSpec{Name: name}, Created: time.Now().UTC()}
	tmp, err := d.prepareRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	return r.ID, d.commitNamed(tmp, r)
}

func taken(t *testing.T, d *Driver, name string) bool {
	t.Helper()
	unlock, err := d.lockNames()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ok, err := d.nameTaken(name, "")
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestNameIndexAcrossProcesses: each Driver (one per berth process) keeps
// the names in memory; what another adds, renames or removes is seen.
func TestNameIndexAcrossProcesses(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	d1, d2 := &Driver{opt: Options{Root: root}}, &Driver{opt: Options{Root: root}}
	if taken(t, d2, "a") { // d2 reads its index now
		t.Fatal("a taken in an empty root")
	}
	idA, err := create(t, d1, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !taken(t, d2, "a") {
		t.Error("d2 does not see the a that d1 created")
	}
	if _, err := create(t, d2, "a"); !errors.Is(err, driver.ErrAlreadyExists) {
		t.Errorf("second a from d2: %v, want ErrAlreadyExists", err)
	}
	// A removal does not change the generation: the stale entry is checked.
	if err := d1.removeDir(idA); err != nil {
		t.Fatal(err)
	}
	if taken(t, d2, "a") {
		t.Error("d2 still sees the removed a")
	}
	// A rename by hand (what RenameContainer does under the lock).
	idB, err := create(t, d2, "b")
	if err != nil {
		t.Fatal(err)
	}
	if taken(t, d1, "c") {
		t.Fatal("c taken before the rename")
	}
	unlock, _ := d2.lockNames()
	r, _ := d2.readRecord(idB)
	r.Name = "c"
	if err := d2.writeRecord(r); err != nil {
		t.Fatal(err)
	}
	if err := d2.nameAdded("c", idB); err != nil {
		t.Fatal(err)
	}
	unlock()
	if !taken(t, d1, "c") || taken(t, d1, "b") {
		t.Errorf("after rename b→c d1 sees c:%v b:%v, want true false", taken(t, d1, "c"), taken(t, d1, "b"))
	}
	// The prepared directories of failed creates are gone.
	recs, err := d1.records()
	if err != nil || len(recs) != 1 {
		t.Errorf("records: %d %v", len(recs), err)
	}
}

// TestNameRace: many creates of one name from several Drivers at once make
// exactly one container.
func TestNameRace(t *testing.T) {
	root := t.TempDir()
	ds := []*Driver{{opt: Options{Root: root}}, {opt: Options{Root: root}}, {opt: Options{Root: root}}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func(d *Driver) {
			defer wg.Done()
			_, err := create(t, d, "same")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if !errors.Is(err, driver.ErrAlreadyExists) {
				t.Error(err)
			}
		}(ds[i%len(ds)])
	}
	wg.Wait()
	recs, err := ds[0].records()
	if won != 1 || err != nil || len(recs) != 1 {
		t.Errorf("%d creates won, %d records (%v); want 1 and 1", won, len(recs), err)
	}
}

// TestPreparedLeftovers: a create's prepared directory is cleared once
// the process that made it is gone (berth killed between preparing and
// committing), and left alone while it lives.
func TestPreparedLeftovers(t *testing.T) {
	root := t.TempDir()
	d := &Driver{opt: Options{Root: root}}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	dead := filepath.Join(root, "containers", prepPrefix+strconv.Itoa(cmd.Process.Pid)+"-"+newID())
	mine := filepath.Join(root, "containers", prepPrefix+strconv.Itoa(os.Getpid())+"-"+newID())
	for _, dir := range []string{dead, mine} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.records(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("the prepared directory of a dead process stays")
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a live create's prepared directory went: %v", err)
	}
}

// An observation seeds the names (seedNames) from the records it listed
// after reading the generation; a name another process adds after that
// read changes the generation, and is seen.
func TestSeededNamesSeeLaterAdditions(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	d1, d2 := &Driver{opt: Options{Root: root}}, &Driver{opt: Options{Root: root}}
	if _, err := create(t, d1, "a"); err != nil {
		t.Fatal(err)
	}
	gen := d2.peekNamesGen()
	if gen == "" {
		t.Fatal("no generation after a create")
	}
	recs, err := d2.listRecords(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create(t, d1, "late"); err != nil { // after d2's listing
		t.Fatal(err)
	}
	d2.seedNames(gen, recs)
	if d2.index == nil || d2.index.names["a"] == "" {
		t.Fatalf("seeded index: %+v", d2.index)
	}
	if !taken(t, d2, "late") {
		t.Error("d2's seeded index hides a name added after its listing")
	}
	if _, err := create(t, d2, "late"); !errors.Is(err, driver.ErrAlreadyExists) {
		t.Errorf("second late from d2: %v, want ErrAlreadyExists", err)
	}
	if !taken(t, d2, "a") || taken(t, d2, "b") {
		t.Error("seeded index: a not taken, or b taken")
	}
}
