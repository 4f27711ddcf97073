// Package gitops follows a git repository: it fetches the branch or tag a
// project is deployed from, checks revisions out into one stable working
// tree, decides whether a commit touches the project at all, and drives
// reconciler.Loop with the revision's desired state, recording every apply.
package gitops

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Repo is the local copy of the followed repository: objects under
// <dir>/git, the checked-out revision under <dir>/work. The working tree
// path never changes between revisions, so bind mounts and the project's
// working-dir label stay the same and only what a commit changed is
// recreated.
type Repo struct {
	URL  string // as given, credentials included (kept in git/config, under the 0700 state dir)
	Ref  string // branch or tag name; "" is the remote's HEAD
	Dir  string
	auth transport.AuthMethod

	shown string // URL with any password masked, for messages

	mu   sync.Mutex // one checkout or fetch at a time
	repo *git.Repository
}

const remoteName = "origin"

// OpenRepo opens the local copy under dir, creating it when missing. It
// does not touch the network.
func OpenRepo(url, ref, dir string) (*Repo, error) {
	if isLocalPath(url) {
		abs, err := filepath.Abs(url)
		if err != nil {
			return nil, err
		}
		url = abs
	}
	r := &Repo{URL: url, Ref: ref, Dir: dir, shown: Redact(url)}
	auth, err := authFor(url)
	if err != nil {
		return nil, err
	}
	r.auth = auth
	gitDir, work := filepath.Join(dir, "git"), r.WorkDir()
	for _, d := range []string{gitDir, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	// a small object cache: one checkout at a time reads each object once,
	// and the controller's resident memory is what idles on the machine
	st := filesystem.NewStorage(osfs.New(gitDir), cache.NewObjectLRU(4*cache.MiByte))
	repo, err := git.Open(st, osfs.New(work))
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.Init(st, osfs.New(work))
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", gitDir, err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return nil, err
	}
	cfg.Remotes[remoteName] = &config.RemoteConfig{Name: remoteName, URLs: []string{url}}
	if err := repo.SetConfig(cfg); err != nil {
		return nil, err
	}
	r.repo = repo
	return r, nil
}

// WorkDir is where revisions are checked out.
func (r *Repo) WorkDir() string { return filepath.Join(r.Dir, "work") }

// Redact masks the password of a URL's user info (https://user:xxxxx@host/...),
// for the record, status, metrics and messages.
func Redact(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw
	}
	u, err := neturl.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

func isLocalPath(u string) bool {
	return !strings.Contains(u, "://") && !strings.Contains(strings.SplitN(u, "/", 2)[0], ":")
}

// Remote asks the remote which commit the followed ref points at, without
// fetching anything (git ls-remote): a poll that finds nothing new costs
// one round trip.
func (r *Repo) Remote(ctx context.Context) (plumbing.Hash, plumbing.ReferenceName, error) {
	rem, err := r.repo.Remote(remoteName)
	if err != nil {
		return plumbing.ZeroHash, "", err
	}
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: r.auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return plumbing.ZeroHash, "", fmt.Errorf("list %s: %w", r.shown, err)
	}
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, ref := range refs {
		byName[ref.Name()] = ref
	}
	var candidates []plumbing.ReferenceName
	if r.Ref == "" {
		head := byName[plumbing.HEAD]
		if head != nil && head.Type() == plumbing.SymbolicReference {
			candidates = append(candidates, head.Target())
		}
		candidates = append(candidates, plumbing.HEAD, "refs/heads/main", "refs/heads/master")
	} else if strings.HasPrefix(r.Ref, "refs/") {
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(r.Ref)}
	} else {
		candidates = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(r.Ref), plumbing.NewTagReferenceName(r.Ref)}
	}
	for _, name := range candidates {
		ref := byName[name]
		if ref == nil || ref.Type() != plumbing.HashReference {
			continue
		}
		// an annotated tag: the peeled entry names the commit
		if peeled := byName[plumbing.ReferenceName(string(name)+"^{}")]; peeled != nil {
			return peeled.Hash(), name, nil
		}
		return ref.Hash(), name, nil
	}
	return plumbing.ZeroHash, "", fmt.Errorf("%s has no ref %q", r.shown, r.Ref)
}

// Fetch makes commit want (found at ref on the remote) available locally,
// shallowly: only that commit's tree is transferred, never the history.
func (r *Repo) Fetch(ctx context.Context, ref plumbing.ReferenceName, want plumbing.Hash) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.has(want) {
		return nil
	}
	local := plumbing.ReferenceName("refs/berth/" + strings.TrimPrefix(string(ref), "refs/"))
	err := r.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", ref, local))},
		Depth:      1,
		Auth:       r.auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s %s: %w", r.shown, ref, err)
	}
	if !r.has(want) {
		return fmt.Errorf("fetch %s: %s moved past %s while fetching", r.shown, ref, short(want))
	}
	return nil
}

func (r *Repo) has(h plumbing.Hash) bool {
	_, err := r.repo.CommitObject(h)
	return err == nil
}

// Has reports whether commit h is in the local copy.
func (r *Repo) Has(h plumbing.Hash) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.has(h)
}

// Resolve turns a full or abbreviated revision into a local commit.
func (r *Repo) Resolve(rev string) (plumbing.Hash, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("revision %s: %w (only revisions fetched before can be used)", rev, err)
	}
	return *h, nil
}

// Checkout makes the tracked files of the working tree exactly commit h
// (files of other revisions removed, local edits overwritten).
func (r *Repo) Checkout(ctx context.Context, h plumbing.Hash) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	wt, err := r.repo.Worktree()
	if err != nil {
		return err
	}
	// Untracked (and ignored) files are kept, as git checkout keeps them:
	// a read-write bind mount of a directory of the repository
	// (./data:/data) holds what the containers wrote there. go-git's
	// forced checkout is a hard reset that deletes them, so the checkout
	// merges, after putting back the tracked files edited in place.
	err = wt.Checkout(&git.CheckoutOptions{Hash: h})
	if errors.Is(err, git.ErrUnstagedChanges) {
		if err = r.restoreTracked(wt); err == nil {
			err = wt.Checkout(&git.CheckoutOptions{Hash: h})
		}
	}
	if err != nil {
		return fmt.Errorf("checkout %s: %w", short(h), err)
	}
	return nil
}

// restoreTracked resets the tracked files modified or deleted in the
// working tree to the checked-out revision, and nothing else.
func (r *Repo) restoreTracked(wt *git.Worktree) error {
	head, err := r.repo.Head()
	if err != nil {
		return err
	}
	st, err := wt.Status()
	if err != nil {
		return err
	}
	var files []string
	for name, fs := range st {
		if fs.Worktree != git.Unmodified && fs.Worktree != git.Untracked {
			files = append(files, name)
		}
	}
	return wt.Reset(&git.ResetOptions{Commit: head.Hash(), Mode: git.HardReset, Files: files})
}

// Subject returns the first line of commit h's message.
func (r *Repo) Subject(h plumbing.Hash) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.repo.CommitObject(h)
	if err != nil {
		return ""
	}
	s, _, _ := strings.Cut(c.Message, "\n")
	return s
}

// Fingerprint identifies what of commit h the project depends on: the
// tree under each of paths (repository-relative, slash-separated; a file
// or a directory; "" is the whole repository). Two commits with equal
// fingerprints deploy the same project, so the second is not applied.
func (r *Repo) Fingerprint(h plumbing.Hash, paths []string) (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.repo.CommitObject(h)
	if err != nil {
		return nil, err
	}
	root, err := c.Tree()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(paths))
	for _, p := range paths {
		out[p] = entryHash(root, p)
	}
	return out, nil
}

// entryHash is the object id at p in the tree, or "absent".
func entryHash(root *object.Tree, p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return root.Hash.String()
	}
	e, err := root.FindEntry(p)
	if err != nil {
		return "absent"
	}
	return e.Hash.String()
}

func short(h plumbing.Hash) string { return h.String()[:12] }

func hashOf(s string) plumbing.Hash { return plumbing.NewHash(s) }
