package gitops

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/berth-dev/berth/reconciler"
)

// onPass runs in the loop's goroutine after every pass: a pass that
// applied the candidate is followed by the health check that accepts or
// rolls it back.
func (c *Controller) onPass(res reconciler.PassResult) {
	c.metrics.pass(res)
	c.mu.Lock()
	cand := c.cand
	passRev, rollback := c.passRev, c.rollback
	passTime := time.Since(c.passStarted)
	if res.Err == nil && rollback == passRev {
		c.rollback = ""
	}
	c.mu.Unlock()
	for _, p := range res.Plans {
		for _, w := range p.Warnings {
			c.logf("warning: %s", w)
		}
	}
	if cand == nil || passRev != cand.rev {
		if rollback != "" && rollback == passRev && res.Err == nil {
			c.logf("rolled back to %s: %d operations", rollback[:12], countOps(res.Plans))
		} else if len(res.Plans) > 0 {
			c.logf("repaired drift (%s): %d operations", strings.Join(res.Reasons, ", "), countOps(res.Plans))
		}
		if res.Err != nil {
			c.logf("pass failed: %v", res.Err)
		}
		return
	}
	changes := planLines(res.Plans)
	c.notePass(cand.rev, changes, passTime)
	err := res.Err
	if err == nil {
		hctx, cancel := context.WithTimeout(c.runCtx, c.o.HealthTimeout)
		err = waitHealthy(hctx, c.o.Driver, cand.desired)
		cancel()
		if c.runCtx.Err() != nil {
			return // killed mid-check: the next controller resumes it
		}
	}
	if err != nil {
		// no poll may check a new revision out while the healthy one is
		// put back in the working tree
		c.pollMu.Lock()
		c.fail(cand.rev, err, true)
		c.pollMu.Unlock()
		return
	}
	c.accept(cand)
}

func countOps(plans []*reconciler.Plan) int {
	n := 0
	for _, p := range plans {
		n += len(p.Ops)
	}
	return n
}

func planLines(plans []*reconciler.Plan) []string {
	var out []string
	for _, p := range plans {
		for _, line := range strings.Split(strings.TrimSpace(p.String()), "\n") {
			// drop the dependency list: the history says what changed
			if _, rest, ok := strings.Cut(line, "-> "); ok {
				line = rest
			}
			if line != "" && len(out) < 200 {
				out = append(out, line)
			}
		}
	}
	return out
}

func (c *Controller) notePass(rev string, changes []string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.rec.Last(); e != nil && e.Revision == rev {
		e.Changes = append(e.Changes, changes...)
		e.PassSeconds += d.Seconds()
	}
}

// accept makes the candidate the applied revision.
func (c *Controller) accept(cand *candidate) {
	c.mu.Lock()
	now := time.Now().UTC()
	var dur time.Duration
	if e := c.rec.Last(); e != nil && e.Revision == cand.rev {
		e.Result, e.Finished, e.Error = ResultHealthy, now, ""
		if cand.pinned {
			e.Result = ResultRolledBack
		}
		dur = now.Sub(e.Started)
	}
	c.rec.Applied = cand.rev
	c.rec.Project = cand.desired.Project
	c.rec.Fingerprint, c.rec.Inputs = cand.fingerprint, cand.inputs
	c.rec.LastError, c.rec.Unchanged = "", ""
	c.cand, c.good, c.target = nil, cand.loaded, cand.loaded
	err := c.rec.Save(c.o.StateDir)
	c.mu.Unlock()
	c.metrics.applied(cand.rev, dur, true)
	if err != nil {
		c.logf("record: %v", err)
	}
	c.logf("revision %s is healthy (%s)", cand.rev[:12], dur.Round(time.Millisecond))
	c.wake("applied") // the remote may have moved meanwhile
}

// fail records that rev cannot be deployed and goes back to the last
// healthy revision; rev is retried only once the remote moves past it.
// The caller holds pollMu (or no poll runs yet).
func (c *Controller) fail(rev string, err error, rollback bool) {
	c.mu.Lock()
	now := time.Now().UTC()
	e := c.rec.Last()
	if e == nil || e.Revision != rev || e.Result != ResultApplying {
		c.rec.History = append(c.rec.History, Entry{Revision: rev, Subject: c.repo.Subject(plumbing.NewHash(rev)), Started: now})
		e = c.rec.Last()
	}
	e.Result, e.Finished, e.Error = ResultFailed, now, err.Error()
	dur := now.Sub(e.Started)
	c.rec.Failed, c.rec.LastError = rev, fmt.Sprintf("%s: %v", rev[:12], err)
	if c.rec.Pin != nil && c.rec.Pin.Revision == rev {
		c.rec.Pin = nil // a pin that cannot run is dropped, not retried
	}
	c.cand = nil
	c.target = c.good
	good := c.good
	saveErr := c.rec.Save(c.o.StateDir)
	c.mu.Unlock()
	c.metrics.applied(rev, dur, false)
	if saveErr != nil {
		c.logf("record: %v", saveErr)
	}
	c.logf("revision %s failed: %v", rev[:12], err)
	if good == nil {
		return
	}
	// the working tree holds the bind-mounted files: put the healthy
	// revision's back before the loop converges to it
	if cerr := c.repo.Checkout(c.runCtx, plumbing.NewHash(good.rev)); cerr != nil {
		c.logf("checkout %s: %v", good.rev[:12], cerr)
	}
	if rollback && c.loop != nil {
		c.mu.Lock()
		c.rollback = good.rev
		c.mu.Unlock()
		c.logf("rolling back to %s", good.rev[:12])
		c.loop.Kick("rollback to " + good.rev[:12])
	}
}

// wake asks the poller to fetch now.
func (c *Controller) wake(reason string) {
	select {
	case c.fetchNow <- reason:
	default:
	}
}
