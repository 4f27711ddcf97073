package native

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/berth-dev/berth/state"
)

func recordNames(t *testing.T, d *Driver) []string {
	t.Helper()
	recs, err := d.listRecords(true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name+"="+r.Spec.Image)
	}
	slices.Sort(names)
	return names
}

// indexTestDriver is a driver on a fresh root in which every record is
// old enough to index (indexRacy is restored after the test).
func indexTestDriver(t *testing.T) *Driver {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := indexRacy
	indexRacy = -time.Hour
	t.Cleanup(func() { indexRacy = old })
	return &Driver{opt: Options{Root: root}}
}

// createdRecord creates a container named name and reads its record back.
func createdRecord(t *testing.T, d *Driver, name string) (string, *record) {
	t.Helper()
	id, err := create(t, d, name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.readRecord(id)
	if err != nil {
		t.Fatal(err)
	}
	return id, r
}

// TestRecordIndex: listRecords(true) (Observe's) serves unchanged records from the index and
// sees every change to the files (added, rewritten, removed), whatever the
// index says; a torn index is ignored.
func TestRecordIndex(t *testing.T) {
	d := indexTestDriver(t)
	idA, err := create(t, d, "a")
	if err != nil {
		t.Fatal(err)
	}
	idB, err := create(t, d, "b")
	if err != nil {
		t.Fatal(err)
	}
	if got := recordNames(t, d); !slices.Equal(got, []string{"a=", "b="}) {
		t.Fatalf("records %v", got)
	}
	if ix := d.loadIndex(); len(ix) != 2 || ix[idA].Rec.Name != "a" {
		t.Fatalf("index after the first listing: %v", ix)
	}

	// Served from the index: a record's content is not read again while
	// its file is the same. Poison the cached copy to prove it.
	ix := d.loadIndex()
	e := ix[idA]
	e.Rec.Spec.Image = "from-index"
	ix[idA] = e
	d.saveIndex(ix)
	if got := recordNames(t, d); !slices.Equal(got, []string{"a=from-index", "b="}) {
		t.Fatalf("records with an unchanged file %v, want a from the index", got)
	}
	// records() (everything but Observe) reads the files.
	if recs, err := d.records(); err != nil {
		t.Fatal(err)
	} else {
		for _, r := range recs {
			if r.Spec.Image != "" {
				t.Fatalf("records() served %s from the index", r.Name)
			}
		}
	}

	// Rewritten (as RenameContainer does): the file decides.
	r, err := d.readRecord(idA)
	if err != nil {
		t.Fatal(err)
	}
	r.Spec.Image = "img:2"
	if err := d.writeRecord(r); err != nil {
		t.Fatal(err)
	}
	if got := recordNames(t, d); !slices.Equal(got, []string{"a=img:2", "b="}) {
		t.Fatalf("records after a rewrite %v", got)
	}

	// Removed, and a new one added: the index follows the directory.
	if err := d.removeDir(idB); err != nil {
		t.Fatal(err)
	}
	if got := recordNames(t, d); !slices.Equal(got, []string{"a=img:2"}) {
		t.Fatalf("records after a removal %v", got)
	}
	if _, ok := d.loadIndex()[idB]; ok {
		t.Fatal("the listing after a removal kept the removed container in the index")
	}
	// a listing that read b before its removal does not index it
	d.saveIndex(map[string]indexEntry{idB: {Rec: record{ID: idB, Name: "b"}}})
	if _, ok := d.loadIndex()[idB]; ok {
		t.Fatal("saveIndex indexed a removed container")
	}
	if _, err := create(t, d, "c"); err != nil {
		t.Fatal(err)
	}
	if got := recordNames(t, d); !slices.Equal(got, []string{"a=img:2", "c="}) {
		t.Fatalf("records after a removal and a create %v", got)
	}
	if ix := d.loadIndex(); len(ix) != 2 {
		t.Fatalf("index keeps %d entries, want 2", len(ix))
	}

	// A torn index is no index.
	b, err := os.ReadFile(d.indexPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.indexPath(), b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if got := recordNames(t, d); !slices.Equal(got, []string{"a=img:2", "c="}) {
		t.Fatalf("records with a torn index %v", got)
	}
}

// TestRecordIndexRacy: a record changed within indexRacy of a listing is
// not indexed (its file times may not tell a later rewrite from it).
func TestRecordIndexRacy(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	d := &Driver{opt: Options{Root: root}}
	if _, err := create(t, d, "a"); err != nil {
		t.Fatal(err)
	}
	if got := recordNames(t, d); !slices.Equal(got, []string{"a="}) {
		t.Fatalf("records %v", got)
	}
	if ix := d.loadIndex(); len(ix) != 0 {
		t.Fatalf("a record written just now was indexed: %v", ix)
	}
}

// TestRecordIndexObserveFields: what Observe reads of a record is the same
// whether the record comes from its file or from the index.
func TestRecordIndexObserveFields(t *testing.T) {
	d := indexTestDriver(t)
	id, r := createdRecord(t, d, "p-web-2")
	r.Started = true
	r.Created = time.Date(2026, 11, 27, 21, 0, 0, 123456789, time.UTC)
	r.Spec.Project, r.Spec.Service, r.Spec.Number, r.Spec.OneOff = "p", "web", 2, true
	r.Spec.ConfigHash, r.Spec.ImageDigest, r.Spec.Image = "h", "sha256:d", "app:1"
	r.Spec.Labels = map[string]string{"com.docker.compose.container-number": "2", "x": ""}
	r.Spec.Networks = []state.NetworkAttachment{{Network: "p_front"}, {Network: "p_back"}}
	if err := d.writeRecord(r); err != nil {
		t.Fatal(err)
	}
	project := func(r *record) string {
		var nets []string
		for _, a := range r.Spec.Networks {
			nets = append(nets, a.Network)
		}
		return fmt.Sprintf("%s %s %v %v %s %s %d %v %s %s %s %v %v", r.ID, r.Name, r.Created, r.Started,
			r.Spec.Project, r.Spec.Service, r.Spec.Number, r.Spec.OneOff, r.Spec.ConfigHash,
			r.Spec.ImageDigest, r.Spec.Image, r.Spec.Labels, nets)
	}
	want := project(r)
	if _, err := d.listRecords(true); err != nil { // writes the index
		t.Fatal(err)
	}
	if _, ok := d.loadIndex()[id]; !ok {
		t.Fatal("not indexed")
	}
	recs, err := d.listRecords(true)
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	if got := project(recs[0]); got != want {
		t.Fatalf("from the index:\n %s\nfrom the file:\n %s", got, want)
	}
}

// The index keeps only what Observe reads: no environment (it may hold
// secrets) outlives a container there, although removals leave the index
// as it is until the next listing.
func TestRecordIndexHoldsNoEnvironment(t *testing.T) {
	d := indexTestDriver(t)
	id, r := createdRecord(t, d, "db")
	r.Spec.Env = []string{"PASSWORD=hunter2-in-the-env"}
	r.Spec.Command = []string{"--password", "hunter2-in-the-command"}
	if err := d.writeRecord(r); err != nil {
		t.Fatal(err)
	}
	if got := recordNames(t, d); len(got) != 1 {
		t.Fatalf("records %v", got)
	}
	if _, ok := d.loadIndex()[id]; !ok {
		t.Fatal("not indexed")
	}
	if err := d.removeDir(id); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(d.indexPath())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("hunter2")) {
		t.Fatal("the record index holds a removed container's environment or command")
	}
}
