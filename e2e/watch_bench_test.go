package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWatchBench measures what issue 9 asks of berth watch; it only runs
// with BERTH_BENCH=1 and prints figures, asserting none:
//
//	BERTH_BENCH=1 go test -run TestWatchBench -v -count=1 ./e2e/
func TestWatchBench(t *testing.T) {
	if os.Getenv("BERTH_BENCH") == "" {
		t.Skip("benchmark: set BERTH_BENCH=1")
	}
	const debounce = 500 * time.Millisecond
	m := newMachine(t)
	p := m.project(`
services:
  a:
    image: localhost/busybox:e2e
    pull_policy: never
    init: true
    stop_grace_period: 1s
    command: ["sleep", "100000"]
    environment:
      X: "${X_VALUE}"
    develop:
      watch:
        - path: ./src
          target: /app
          action: sync
`, map[string]string{".env": "X_VALUE=0\n", "src/f": "0"})
	w := p.watch("--debounce", debounce.String())
	w.expect(time.Minute, "reconciled after start")

	startLine := regexp.MustCompile(`Container \(.*\) done in (\S+)`)
	var total, beyond, startOp, stopOp, overhead []time.Duration
	for i := 1; i <= 5; i++ {
		old := p.ids()[name(p, "a")]
		written := time.Now()
		p.write(".env", fmt.Sprintf("X_VALUE=%d\n", i))
		stopLine := w.expect(time.Minute, "service:a:1 StopContainer")
		line := w.expect(time.Minute, "service:a:1 StartContainer")
		w.expect(time.Minute, "reconciled after")
		id := p.ids()[name(p, "a")]
		s, err := m.runtimeState(id)
		if id == old || err != nil {
			t.Fatalf("round %d: not recreated (%v)", i, err)
		}
		op, _ := time.ParseDuration(startLine.FindStringSubmatch(line)[1])
		stop, _ := time.ParseDuration(startLine.FindStringSubmatch(stopLine)[1])
		lat := s.Started.Sub(written)
		total = append(total, lat)
		beyond = append(beyond, lat-debounce)
		startOp = append(startOp, op)
		stopOp = append(stopOp, stop)
		overhead = append(overhead, lat-debounce-op-stop)
	}
	t.Logf("compose edit -> recreated container running (%d rounds, debounce %s):", len(total), debounce)
	t.Logf("  total            median %s  max %s", median(total), maxOf(total))
	t.Logf("  beyond debounce  median %s  max %s", median(beyond), maxOf(beyond))
	t.Logf("  StartContainer   median %s  max %s", median(startOp), maxOf(startOp))
	t.Logf("  StopContainer    median %s  max %s (the old container's SIGTERM)", median(stopOp), maxOf(stopOp))
	t.Logf("  beyond debounce, stop and start: median %s  max %s (target <= 300ms)", median(overhead), maxOf(overhead))

	a := p.ids()[name(p, "a")]
	var syncLat []time.Duration
	for i := 1; i <= 10; i++ {
		want := fmt.Sprintf("content %d", i)
		written := time.Now()
		p.write("src/f", want)
		for m.inContainer(a, "/app/f") != want {
			if time.Since(written) > 30*time.Second {
				t.Fatalf("round %d: file not synced", i)
			}
			time.Sleep(time.Millisecond)
		}
		syncLat = append(syncLat, time.Since(written)-debounce)
		w.expect(10*time.Second, "a: synced")
	}
	t.Logf("synced file visible after the debounce (%d rounds): median %s  max %s (target <= 100ms)", len(syncLat), median(syncLat), maxOf(syncLat))

	time.Sleep(2 * time.Second) // let the passes the edits caused settle
	pid := w.pid
	const idle = 35 * time.Second // longer than the 30s resync: one is included
	before := cpuTicks(t, pid)
	time.Sleep(idle)
	used := time.Duration(cpuTicks(t, pid)-before) * 10 * time.Millisecond // USER_HZ 100
	t.Logf("idle controller: %s of CPU in %s = %.2f%% of one CPU (target < 1%%)", used, idle, 100*used.Seconds()/idle.Seconds())
	if err := w.exit(); err != nil {
		t.Fatal(err)
	}
}

// cpuTicks is utime+stime of a process, in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	// fields after the command (which may hold spaces) start at state
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

func maxOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m.Round(time.Millisecond)
}
