package gitops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// Options configure one controller following one repository.
type Options struct {
	URL  string
	Ref  string // branch or tag; "" follows the remote's HEAD
	Path string // directory of the project inside the repository
	// Files are -f compose files relative to Path; none means discovery.
	Files       []string
	ProjectName string
	Profiles    []string
	EnvFiles    []string // relative to Path
	// AgeKeyFile holds age identities for SOPS-encrypted files, besides
	// SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and ~/.config/sops/age/keys.txt.
	AgeKeyFile string

	Interval      time.Duration // fetch period (default 30s)
	HealthTimeout time.Duration // how long a new revision has to become healthy (default 2m)
	Resync        time.Duration // drift repair period between commits (default Interval)
	Prune         bool          // remove services deleted from the repository

	// Secret verifies webhook deliveries; WebhookListen is their address
	// (also serving /metrics); "" serves nothing.
	Secret        []byte
	WebhookListen string

	// StateDir is this sync's directory (see StateDir); Driver the
	// machine; Locker returns the project's mutation lock.
	StateDir string
	Driver   driver.Driver
	Locker   func(project string) reconciler.Locker
	Exec     reconciler.ExecOptions
	Log      io.Writer
	Environ  []string // nil: the process environment
}

// StateDir is where the sync of (url, ref, path) keeps its clone and
// record under berth's state root: a readable name plus a hash, so that
// two syncs of different branches never share a working tree.
func StateDir(root, url, ref, path string) string {
	// a password is not part of the identity: changing it keeps the sync
	h := sha256.Sum256([]byte(Redact(url) + "\x00" + ref + "\x00" + filepath.Clean("/"+path)))
	base := strings.TrimSuffix(filepath.Base(strings.TrimRight(url, "/")), ".git")
	base = unsafeChars.ReplaceAllString(base, "_")
	if base == "" || base == "." {
		base = "repo"
	}
	return filepath.Join(root, "gitops", base+"-"+hex.EncodeToString(h[:4]))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// candidate is a revision applied but not yet known to be healthy.
type candidate struct {
	rev    string
	pinned bool
	*loaded
}

// Controller follows a repository: see Run.
type Controller struct {
	o       Options
	repo    *Repo
	metrics *metrics

	pollMu sync.Mutex // one poll at a time
	mu     sync.Mutex // guards everything below
	rec    *Record
	target *loaded // what the loop converges to
	good   *loaded // the last healthy revision
	cand   *candidate
	// passRev is the revision the running pass converges to; rollback
	// the healthy revision a failed one is being rolled back to.
	passRev, rollback string
	passStarted       time.Time

	loop     *reconciler.Loop
	runCtx   context.Context
	fetchNow chan string
}

// New opens the local copy and the record; it touches neither the network
// nor the machine.
func New(o Options) (*Controller, error) {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = 2 * time.Minute
	}
	if o.Resync <= 0 {
		o.Resync = o.Interval
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	repo, err := OpenRepo(o.URL, o.Ref, o.StateDir)
	if err != nil {
		return nil, err
	}
	// decrypted compose files live only during a load: one a killed
	// controller left behind goes now
	os.RemoveAll(filepath.Join(o.StateDir, plainDir))
	rec, err := LoadRecord(o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	rec.URL, rec.Ref, rec.Path = Redact(o.URL), o.Ref, o.Path
	// written at once, so that status shows a sync whose first fetch has
	// not succeeded yet
	if err := rec.Save(o.StateDir); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return &Controller{o: o, repo: repo, rec: rec, metrics: newMetrics(), fetchNow: make(chan string, 1)}, nil
}

func (c *Controller) logf(format string, args ...any) {
	fmt.Fprintf(c.o.Log, "berth sync: "+format+"\n", args...)
}

// Run follows the repository until ctx ends: it resumes from the record,
// fetches on every interval and webhook delivery, applies each new
// revision that changes the project, rolls back those that fail, and
// repairs drift in between.
func (c *Controller) Run(ctx context.Context) error {
	c.runCtx = ctx
	release, err := holdController(c.o.StateDir)
	if err != nil {
		return err
	}
	defer release()
	if !c.o.Prune {
		c.logf("--prune is off: services deleted from the repository keep running")
	}
	var srv *server
	if c.o.WebhookListen != "" {
		ln, err := net.Listen("tcp", c.o.WebhookListen)
		if err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		srv = c.serve(ln)
		defer srv.close()
		c.logf("webhook and /metrics on http://%s", ln.Addr())
	}
	if err := c.resume(ctx); err != nil {
		return err
	}
	// the project's name is only known once one revision loads
	for c.current() == nil {
		c.poll(ctx)
		if c.current() != nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.o.Interval):
		case <-c.fetchNow:
		}
	}
	cur := c.current()
	c.loop = &reconciler.Loop{
		Driver:  c.o.Driver,
		Project: cur.desired.Project,
		Desired: c.desired,
		Options: reconciler.Options{RemoveOrphans: c.o.Prune},
		Exec:    c.o.Exec,
		Resync:  c.o.Resync,
		Sources: []reconciler.Source{reconciler.SourceFunc(c.pollSource)},
		OnPass:  c.onPass,
		OnInvalid: func(err error) {
			c.logf("invalid: %v", err)
		},
		OnSourceError: func(err error) { c.logf("source: %v", err) },
	}
	if c.o.Locker != nil {
		c.loop.Locker = c.o.Locker(cur.desired.Project)
	}
	return c.loop.Run(ctx)
}

func (c *Controller) current() *loaded {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target
}

// resume rebuilds the in-memory state from the record: the applied
// revision is the target again, and an apply the previous controller did
// not finish is finished under its own history entry (never a second one).
func (c *Controller) resume(ctx context.Context) error {
	c.mu.Lock()
	applied, last := c.rec.Applied, c.rec.Last()
	c.mu.Unlock()
	if applied != "" {
		l, err := c.checkoutAndLoad(ctx, plumbing.NewHash(applied))
		if err != nil {
			c.logf("applied revision %s no longer loads: %v", applied[:12], err)
		} else {
			c.mu.Lock()
			c.target, c.good = l, l
			c.mu.Unlock()
		}
	}
	if last == nil || last.Result != ResultApplying {
		return nil
	}
	rev := last.Revision
	c.logf("resuming the interrupted apply of %s", rev[:12])
	l, err := c.checkoutAndLoad(ctx, plumbing.NewHash(rev))
	if err != nil {
		c.fail(rev, err, false)
		return nil
	}
	if cur := c.current(); cur != nil && cur.desired.Project != l.desired.Project {
		c.fail(rev, fmt.Errorf("project name changed from %s to %s", cur.desired.Project, l.desired.Project), false)
		return nil
	}
	c.mu.Lock()
	c.cand = &candidate{rev: rev, pinned: last.Pinned, loaded: l}
	c.target = l
	c.mu.Unlock()
	return nil
}

// desired is the loop's source of truth: the candidate while one is being
// applied, else the last healthy revision.
func (c *Controller) desired(ctx context.Context) (*state.Desired, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.target == nil {
		return nil, errors.New("no revision loaded yet")
	}
	c.passRev = c.target.rev
	c.passStarted = time.Now()
	// a new revision rebuilds images whose policy asks for it; drift
	// repair passes do not (they would pull or rebuild every resync)
	c.loop.Options.RefreshImages = c.cand != nil && c.cand.rev == c.target.rev
	return c.target.desired, nil
}
