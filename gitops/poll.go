package gitops

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/state"
)

// loaded is one revision's project.
type loaded struct {
	rev     string
	desired *state.Desired
	// inputs are the repository paths the project was read from (compose
	// files, includes, env files, configs, secrets, build contexts, the
	// project path itself) and fingerprint their object ids at rev.
	inputs      []string
	fingerprint map[string]string
}

// pinPoll is how often the poller looks for a `berth sync rollback`
// request: a stat of one file.
const pinPoll = time.Second

// pollSource fetches on every interval, on webhook deliveries and when a
// rollback is requested; it kicks the loop itself when a revision is
// ready to apply.
func (c *Controller) pollSource(ctx context.Context, _ func(string)) error {
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	pins := time.NewTicker(pinPoll)
	defer pins.Stop()
	pinPath := filepath.Join(c.o.StateDir, pinFile)
	c.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-c.fetchNow:
		case <-pins.C:
			if _, err := os.Stat(pinPath); err != nil {
				continue
			}
		}
		c.poll(ctx)
	}
}

// poll asks the remote for the followed ref and starts applying the
// revision that should run, unless it already runs, already failed, is
// pinned away, or changes nothing under the project's inputs.
func (c *Controller) poll(ctx context.Context) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	c.takePin()
	head, ref, err := c.repo.Remote(ctx)
	c.metrics.fetched(err)
	if ctx.Err() != nil {
		return
	}
	if c.noteFetch(err); err != nil {
		return
	}
	c.mu.Lock()
	if c.cand != nil {
		c.mu.Unlock()
		return // an apply is being verified; accept or fail polls again
	}
	rec := c.rec
	moved := rec.Head != head.String()
	rec.Head = head.String()
	if rec.Pin != nil && rec.Pin.Head != rec.Head {
		c.logf("new commit %s: pin on %s released", short(head), rec.Pin.Revision[:12])
		rec.Pin = nil
		moved = true
	}
	want, pinned := rec.Head, rec.Pin != nil
	if pinned {
		want = rec.Pin.Revision
	}
	applied, failed, unchanged := rec.Applied, rec.Failed, rec.Unchanged
	inputs, fp := rec.Inputs, rec.Fingerprint
	if moved {
		c.save()
	}
	c.mu.Unlock()
	if want == applied || (!pinned && (want == failed || want == unchanged)) {
		return
	}
	if !pinned {
		if err := c.repo.Fetch(ctx, ref, head); err != nil {
			c.logf("%v", err)
			return
		}
		if applied != "" {
			now, err := c.repo.Fingerprint(head, inputs)
			if err == nil && maps.Equal(now, fp) {
				c.logf("revision %s changes nothing under the project's inputs: not applied", short(head))
				c.mu.Lock()
				c.rec.Unchanged = want
				c.save()
				c.mu.Unlock()
				return
			}
		}
	}
	c.start(ctx, want, pinned)
}

// noteFetch records a poll's outcome; the record is written only when
// the error changes, not on every interval.
func (c *Controller) noteFetch(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec.FetchError == msg {
		return
	}
	if err != nil {
		c.logf("%v", err)
	} else {
		c.logf("the remote answers again")
	}
	c.rec.FetchError = msg
	c.save()
}

// start checks rev out and loads it; a revision that loads becomes the
// candidate the loop applies.
func (c *Controller) start(ctx context.Context, rev string, pinned bool) {
	l, err := c.checkoutAndLoad(ctx, plumbing.NewHash(rev))
	if err == nil {
		if cur := c.current(); cur != nil && cur.desired.Project != l.desired.Project {
			err = fmt.Errorf("the project name changed from %s to %s: run berth down on the old one first", cur.desired.Project, l.desired.Project)
		}
	}
	if err != nil {
		c.fail(rev, err, false)
		return
	}
	subject := c.repo.Subject(plumbing.NewHash(rev))
	c.mu.Lock()
	c.rec.History = append(c.rec.History, Entry{Revision: rev, Subject: subject, Started: time.Now().UTC(),
		Result: ResultApplying, Pinned: pinned})
	c.cand = &candidate{rev: rev, pinned: pinned, loaded: l}
	c.target = l
	c.save()
	c.mu.Unlock()
	c.logf("applying %s %q", rev[:12], subject)
	if c.loop != nil {
		c.loop.Kick("revision " + rev[:12])
	}
}

// takePin applies a pending `berth sync rollback` request.
func (c *Controller) takePin() {
	req, err := takePinRequest(c.o.StateDir)
	if err != nil || req == nil {
		if err != nil {
			c.logf("rollback request: %v", err)
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.Revision == "" {
		c.rec.Pin = nil
		c.logf("unpinned: following %s again", c.o.Ref)
		c.save()
		return
	}
	h, err := c.repo.Resolve(req.Revision)
	if err != nil {
		c.logf("rollback: %v", err)
		c.rec.LastError = "rollback: " + err.Error()
		c.save()
		return
	}
	c.rec.Pin = &Pin{Revision: h.String(), Head: c.rec.Head, Since: time.Now().UTC()}
	c.logf("pinned to %s until the next commit or --unpin", short(h))
	c.save()
}

// save writes the record; c.mu is held.
func (c *Controller) save() {
	if err := c.rec.Save(c.o.StateDir); err != nil {
		c.logf("record: %v", err)
	}
}

// checkoutAndLoad puts rev in the working tree and loads its project.
func (c *Controller) checkoutAndLoad(ctx context.Context, h plumbing.Hash) (*loaded, error) {
	if err := c.repo.Checkout(ctx, h); err != nil {
		return nil, err
	}
	work := c.repo.WorkDir()
	dir := filepath.Join(work, filepath.Clean("/"+c.o.Path))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: no directory %q in the repository", short(h), c.o.Path)
	}
	// SOPS-encrypted files are decrypted on the way: see sops.go
	sec := c.newSecrets(work)
	pr, err := sec.prepareLoad(compose.Options{
		Files: c.o.Files, ProjectName: c.o.ProjectName, Profiles: c.o.Profiles,
		EnvFiles: c.o.EnvFiles, Dir: dir, Environ: c.o.Environ,
	}, dir, c.o.StateDir)
	if err != nil {
		return nil, err
	}
	p, err := compose.Load(ctx, pr.opts)
	pr.cleanup()
	if err != nil {
		return nil, pr.named(err)
	}
	if err := sec.serviceEnvFiles(p.Project); err != nil {
		return nil, err
	}
	d, err := p.Desired()
	if err != nil {
		return nil, err
	}
	restoreConfigFiles(d, pr.replaced)
	if err := sec.files(d); err != nil {
		return nil, err
	}
	if sec.n > 0 {
		c.logf("%s: decrypted %d sops document(s)", short(h), sec.n)
	}
	inputs := repoPaths(work, append(append(slices.Clone(p.Inputs), dir), pr.inputs...), d)
	fp, err := c.repo.Fingerprint(h, inputs)
	if err != nil {
		return nil, err
	}
	return &loaded{rev: h.String(), desired: d, inputs: inputs, fingerprint: fp}, nil
}

// repoPaths keeps the paths inside the working tree, repository-relative,
// adding the build contexts the desired state names.
func repoPaths(work string, paths []string, d *state.Desired) []string {
	for _, s := range d.Services {
		if b := s.Image.Build; b != nil {
			paths = append(paths, b.Context)
			for _, ac := range b.AdditionalContexts {
				if filepath.IsAbs(ac) {
					paths = append(paths, ac)
				}
			}
			if filepath.IsAbs(b.Dockerfile) {
				paths = append(paths, b.Dockerfile)
			}
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		rel, err := filepath.Rel(work, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if !seen[rel] {
			seen[rel] = true
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return out
}
