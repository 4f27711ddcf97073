package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEventsStream follows `berth events --json` while a service is
// created, turns healthy, is stopped and removed: each step is an event of
// compose's shape.
func TestEventsStream(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(`
name: evtest
services:
  app:
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    init: true
    healthcheck:
      test: ["CMD", "true"]
      interval: 300ms
`)
	cmd := exec.Command(berth(t), "events", "--json")
	cmd.Dir = m.dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "BERTH_ROOT=" + m.root, "BERTH_RUN_ROOT=" + m.runRoot}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var actions []string
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e composeEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("event line %q: %v", sc.Text(), err)
				continue
			}
			if e.Type != "container" || e.Service != "app" || e.Attributes["name"] != "evtest-app-1" {
				t.Errorf("event %+v", e)
			}
			mu.Lock()
			actions = append(actions, e.Action)
			mu.Unlock()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	m.must("up", "-d", "--wait")
	m.must("stop", "-t", "1")
	m.must("rm", "-f")
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	mu.Lock()
	got := strings.Join(actions, ",")
	mu.Unlock()
	// The driver writes stop, the monitor die: between them the order is
	// not fixed (docker's own die and stop come from two places too).
	seq := strings.Split(got, ",")
	pos := func(a string) int {
		for i, x := range seq {
			if x == a {
				return i
			}
		}
		return -1
	}
	create, start, healthy, die, stop, destroy := pos("create"), pos("start"), pos("health_status: healthy"), pos("die"), pos("stop"), pos("destroy")
	if create < 0 || !(create < start && start < healthy && healthy < die && healthy < stop && die < destroy && stop < destroy) {
		t.Errorf("events %q: want create, start, health_status: healthy, die and stop, destroy", got)
	}
	if strings.Count(got, "stop") != 1 {
		t.Errorf("events %q: one stop expected (rm of a stopped container is no stop)", got)
	}
}
