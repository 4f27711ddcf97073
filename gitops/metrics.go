package gitops

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/reconciler"
)

// metrics are the counters /metrics reports, in Prometheus' text format
// (written by hand: a handful of series do not need a client library).
type metrics struct {
	mu                     sync.Mutex
	fetches, fetchErrors   int
	passes, passErrors     int
	applies                map[string]int // by result
	applySeconds           float64        // sum over every finished apply
	applyCount             int
	lastApply              time.Time
	lastApplySeconds       float64
	lastFetch, lastFetchOK time.Time
}

func newMetrics() *metrics { return &metrics{applies: map[string]int{}} }

func (m *metrics) fetched(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches++
	m.lastFetch = time.Now()
	if err != nil {
		m.fetchErrors++
	} else {
		m.lastFetchOK = m.lastFetch
	}
}

func (m *metrics) pass(res reconciler.PassResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.passes++
	if res.Err != nil {
		m.passErrors++
	}
}

func (m *metrics) applied(rev string, d time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	result := ResultHealthy
	if !ok {
		result = ResultFailed
	}
	m.applies[result]++
	m.applySeconds += d.Seconds()
	m.applyCount++
	m.lastApply = time.Now()
	m.lastApplySeconds = d.Seconds()
}

// write renders the metrics with the record's state.
func (m *metrics) write(w io.Writer, r *Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := &strings.Builder{}
	series := func(name, typ, help string, lines ...string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, l := range lines {
			fmt.Fprintf(b, "%s%s\n", name, l)
		}
	}
	lbl := fmt.Sprintf(`url=%s,ref=%s,path=%s`, quote(r.URL), quote(r.Ref), quote(r.Path))
	series("berth_sync_info", "gauge", "The followed repository and the revisions applied and wanted.",
		fmt.Sprintf(`{%s,project=%s,applied=%s,wanted=%s} 1`, lbl, quote(r.Project), quote(r.Applied), quote(r.Wanted())))
	var states []string
	for _, s := range []string{Synced, OutOfSync, Degraded} {
		v := 0
		if r.State() == s {
			v = 1
		}
		states = append(states, fmt.Sprintf(`{state=%q} %d`, s, v))
	}
	series("berth_sync_state", "gauge", "1 for the current sync state.", states...)
	pinned := 0
	if r.Pin != nil {
		pinned = 1
	}
	series("berth_sync_pinned", "gauge", "1 while berth sync rollback pins a revision.", fmt.Sprintf(" %d", pinned))
	series("berth_sync_fetches_total", "counter", "Polls of the remote.", fmt.Sprintf(" %d", m.fetches))
	series("berth_sync_fetch_errors_total", "counter", "Polls of the remote that failed.", fmt.Sprintf(" %d", m.fetchErrors))
	series("berth_sync_last_fetch_success_timestamp_seconds", "gauge", "When the remote last answered.", " "+unix(m.lastFetchOK))
	series("berth_sync_applies_total", "counter", "Revisions applied, by result.",
		fmt.Sprintf(`{result=%q} %d`, ResultHealthy, m.applies[ResultHealthy]),
		fmt.Sprintf(`{result=%q} %d`, ResultFailed, m.applies[ResultFailed]))
	series("berth_sync_apply_duration_seconds", "summary", "From checkout to healthy (or failed).",
		fmt.Sprintf("_sum %s", ftoa(m.applySeconds)), fmt.Sprintf("_count %d", m.applyCount))
	series("berth_sync_last_apply_duration_seconds", "gauge", "Duration of the last apply.", " "+ftoa(m.lastApplySeconds))
	series("berth_sync_last_apply_timestamp_seconds", "gauge", "When the last apply finished.", " "+unix(m.lastApply))
	series("berth_sync_passes_total", "counter", "Reconciliation passes (applies and drift repairs).", fmt.Sprintf(" %d", m.passes))
	series("berth_sync_pass_errors_total", "counter", "Reconciliation passes that failed.", fmt.Sprintf(" %d", m.passErrors))
	io.WriteString(w, b.String())
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func unix(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return ftoa(float64(t.UnixNano()) / 1e9)
}
