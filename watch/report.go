package watch

import (
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/reconciler"
)

func (c *Controller) printf(format string, args ...any) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	fmt.Fprintf(c.o.Out, format, args...)
}

// printEvent prints one line per finished operation of a pass.
func (c *Controller) printEvent(e reconciler.Event) {
	if e.Phase == reconciler.Started {
		return
	}
	line := fmt.Sprintf("  %s %s (%s) %s", e.Op.Object, e.Op.Kind, e.Op.Reason, e.Phase)
	if e.Phase != reconciler.Skipped {
		line += " in " + e.Duration.Round(time.Millisecond).String()
	}
	if e.Err != nil {
		line += ": " + e.Err.Error()
	}
	c.printf("%s\n", line)
}

// onPass prints the summary line of a pass that did something or failed;
// passes that found nothing to do (most resyncs) stay silent.
func (c *Controller) onPass(res reconciler.PassResult) {
	if c.o.OnPass != nil {
		defer c.o.OnPass(res)
	}
	ops := 0
	for _, p := range res.Plans {
		ops += len(p.Ops)
		for _, w := range p.Warnings {
			c.printf("berth: warning: %s\n", w)
		}
	}
	if ops > 0 && c.ctx != nil {
		defer c.initialSync(c.ctx) // after the summary line
	}
	if ops == 0 && res.Err == nil {
		return
	}
	c.mu.Lock()
	took := time.Since(c.start).Round(time.Millisecond)
	c.mu.Unlock()
	why := strings.Join(dedupe(res.Reasons), ", ")
	if res.Err != nil {
		c.printf("berth: watch: reconcile after %s failed after %s (%d operations): %v\n", why, took, ops, res.Err)
		return
	}
	c.printf("berth: watch: reconciled after %s: %d operations in %s\n", why, ops, took)
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
