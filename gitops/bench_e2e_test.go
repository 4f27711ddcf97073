package gitops

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSyncLatencyBench measures what issue 10 asks (run by bench/gitops.sh
// with BERTH_BENCH=1; never asserted): from `git push` to the loopback
// HTTP repository plus a webhook delivery to the changed container
// running, against the reconciler's own pass (stop, create, start of that
// container); then the resident memory of the idle controller.
func TestSyncLatencyBench(t *testing.T) {
	if os.Getenv("BERTH_BENCH") == "" {
		t.Skip("benchmark: run bench/gitops.sh (BERTH_BENCH=1)")
	}
	rounds := 10
	if n, err := strconv.Atoi(os.Getenv("BERTH_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	m := newMachine(t, "b")
	u := newUpstream(t)
	u.git(u.bare, "config", "http.receivepack", "true")
	url := gitHTTP(t, filepath.Dir(u.bare)) + "/" + filepath.Base(u.bare)
	write := func(v string) {
		os.WriteFile(filepath.Join(u.work, "compose.yaml"), []byte(project(m.project, v, true)), 0o644)
		os.MkdirAll(filepath.Join(u.work, "www"), 0o755)
		os.WriteFile(filepath.Join(u.work, "www", "index.html"), []byte("hi\n"), 0o644)
		u.git(u.work, "add", "-A")
		u.git(u.work, "commit", "-q", "-m", "v"+v)
	}
	write("0")
	u.git(u.work, "push", "-q", url, "HEAD:refs/heads/main")
	secret := []byte("bench")
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, secret, 0o600)
	hook := "127.0.0.1:" + freePort(t)
	ctl := m.startSync(url, "--ref", "main", "--interval", "1h", "--webhook-listen", hook, "--webhook-secret-file", secretFile)
	m.waitStatus(ctl, "first revision", func(s *Status) bool { return s.State == Synced && s.Applied != "" })
	dir := filepath.Dir(must(filepath.Glob(filepath.Join(m.root, "gitops", "*", recordFile)))[0])

	var totals, passes, overheads, pushes []time.Duration
	for i := 1; i <= rounds; i++ {
		write(strconv.Itoa(i))
		rev := u.git(u.work, "rev-parse", "HEAD")
		t0 := time.Now()
		u.git(u.work, "push", "-q", url, "HEAD:refs/heads/main")
		pushed := time.Since(t0)
		deliver(t, "http://"+hook+"/", secret, "github")
		var e *Entry
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			r, err := LoadRecord(dir)
			if err == nil && r.Last() != nil && r.Last().Revision == rev && r.Last().Result != ResultApplying {
				e = r.Last()
				break
			}
		}
		if e == nil || e.Result != ResultHealthy {
			t.Fatalf("round %d: %+v\n%s", i, e, ctl.output())
		}
		total := e.Finished.Sub(t0)
		pass := time.Duration(e.PassSeconds * float64(time.Second))
		totals, passes, pushes = append(totals, total), append(passes, pass), append(pushes, pushed)
		overheads = append(overheads, total-pass)
	}
	report := func(name string, ds []time.Duration) {
		s := slices.Clone(ds)
		slices.Sort(s)
		fmt.Printf("bench gitops %-44s median %8s  max %8s  (n=%d)\n", name, s[len(s)/2].Round(time.Millisecond),
			s[len(s)-1].Round(time.Millisecond), len(s))
	}
	report("push+webhook -> changed container running", totals)
	report("  of which git push over HTTP", pushes)
	report("  of which the reconciler pass (stop/create/start)", passes)
	report("beyond the container's own pass (target <=1s)", overheads)

	time.Sleep(5 * time.Second) // idle: one poll interval never passes, the resync does
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", ctl.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		// RssFile is the executable's mapped pages (shared, reclaimable);
		// RssAnon the controller's own memory
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") || strings.HasPrefix(line, "Rss") {
			f := strings.Fields(line)
			kb, _ := strconv.Atoi(f[1])
			fmt.Printf("bench gitops idle controller %s %.1f MiB (target RSS < 40 MiB)\n", strings.TrimSuffix(f[0], ":"), float64(kb)/1024)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
