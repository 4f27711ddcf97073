package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// progressOps is a small plan: a network, a volume, a create and the
// start that takes its id from it, a wait, and a removal of an existing
// container known only by id.
func progressOps() []*reconciler.Op {
	return []*reconciler.Op{
		{ID: 1, Kind: reconciler.CreateNetwork, Object: "network:p_default", Network: &state.NetworkSpec{Name: "p_default"}},
		{ID: 2, Kind: reconciler.CreateVolume, Object: "volume:p_data", Volume: &state.VolumeSpec{Name: "p_data"}},
		{ID: 3, Kind: reconciler.CreateContainer, Object: "service:web:1", Container: &state.ContainerSpec{Name: "p-web-1"}},
		{ID: 4, Kind: reconciler.StartContainer, Object: "service:web:1", IDFrom: 3},
		{ID: 5, Kind: reconciler.WaitContainer, Object: "service:web:1", IDFrom: 3, Condition: driver.WaitHealthy},
		{ID: 6, Kind: reconciler.RemoveContainer, Object: "service:old:1", ContainerID: "abc123"},
	}
}

func feed(p *progress, ops []*reconciler.Op, fail int) {
	p.Observed(&state.Observed{Containers: []state.Container{{ID: "abc123", Name: "p-old-1"}}})
	for _, op := range ops {
		p.Event(reconciler.Event{Op: op, Phase: reconciler.Started})
		if op.ID == fail {
			p.Event(reconciler.Event{Op: op, Phase: reconciler.Failed, Err: errors.New("boom")})
			continue
		}
		p.Event(reconciler.Event{Op: op, Phase: reconciler.Succeeded, Duration: 1500 * time.Millisecond})
	}
	p.Close()
}

func withProgress(t *testing.T, mode string) {
	saved := global
	t.Cleanup(func() { global = saved })
	global.progress = mode
}

func TestProgressPlain(t *testing.T) {
	withProgress(t, "plain")
	var b bytes.Buffer
	p, err := newProgress(&b, false)
	if err != nil {
		t.Fatal(err)
	}
	feed(p, progressOps(), 6)
	want := ` Network p_default  Creating
 Network p_default  Created
 Volume "p_data"  Creating
 Volume "p_data"  Created
 Container p-web-1  Creating
 Container p-web-1  Created
 Container p-web-1  Starting
 Container p-web-1  Started
 Container p-web-1  Waiting
 Container p-web-1  Healthy
 Container p-old-1  Removing
 Container p-old-1  Error boom
`
	if b.String() != want {
		t.Errorf("plain progress:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestProgressJSON(t *testing.T) {
	withProgress(t, "json")
	var b bytes.Buffer
	p, _ := newProgress(&b, true)
	feed(p, progressOps()[:1], 0)
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got = append(got, m)
	}
	// compose's field names: id, text, status, dry-run, tail.
	if len(got) != 2 || got[1]["id"] != "Network p_default" || got[1]["text"] != "Created" || got[1]["dry-run"] != true {
		t.Errorf("json progress: %v", got)
	}
}

func TestProgressTTY(t *testing.T) {
	withProgress(t, "tty")
	var b bytes.Buffer
	p, _ := newProgress(&b, false)
	feed(p, progressOps(), 6)
	out := b.String()
	// The final frame starts at the last header.
	last := out[strings.LastIndex(out, "[+] Running"):]
	for _, want := range []string{
		"[+] Running 4/4\n",
		"✔\x1b[0m Container p-web-1  Healthy    ",
		"✔\x1b[0m Network p_default  Created    ",
		"✘\x1b[0m Container p-old-1  Error boom ",
	} {
		if !strings.Contains(last, want) {
			t.Errorf("final tty frame lacks %q:\n%q", want, last)
		}
	}
	if strings.Count(last, "\n") != 5 {
		t.Errorf("final frame has %d lines, want header and 4 objects:\n%s", strings.Count(last, "\n"), last)
	}
	if !strings.Contains(out, "\x1b[5A") {
		t.Errorf("tty progress never redraws in place")
	}
}

func TestProgressModeAuto(t *testing.T) {
	withProgress(t, "auto")
	if m, err := progressMode(&bytes.Buffer{}); err != nil || m != "plain" {
		t.Errorf("auto on a buffer: %q %v", m, err)
	}
	global.progress = "fancy"
	if _, err := progressMode(&bytes.Buffer{}); err == nil {
		t.Errorf("--progress fancy accepted")
	}
	global.progress = "quiet"
	var b bytes.Buffer
	p, _ := newProgress(&b, false)
	feed(p, progressOps(), 0)
	if b.Len() != 0 {
		t.Errorf("quiet printed %q", b.String())
	}
}

// A rename that sets a container aside is a step of its recreate: shown
// only when it fails, as compose shows none of its own rename; a rename a
// user's plan asks for shows.
func TestProgressHidesSetAside(t *testing.T) {
	withProgress(t, "plain")
	var b bytes.Buffer
	p, err := newProgress(&b, false)
	if err != nil {
		t.Fatal(err)
	}
	aside := &reconciler.Op{ID: 1, Kind: reconciler.RenameContainer, Object: "service:old:1", ContainerID: "abc123",
		Reason: "set aside: config changed", Name: "abc123_p-old-1"}
	fail := *aside
	fail.ID = 2
	back := &reconciler.Op{ID: 3, Kind: reconciler.RenameContainer, Object: "service:old:1", ContainerID: "abc123",
		Reason: "finish replacement of p-old-1", Name: "p-old-1"}
	feed(p, []*reconciler.Op{aside, &fail, back}, 2)
	want := ` Container p-old-1  Error boom
 Container p-old-1  Renaming
 Container p-old-1  Renamed
`
	if b.String() != want {
		t.Errorf("plain progress:\n%s\nwant:\n%s", b.String(), want)
	}
}
