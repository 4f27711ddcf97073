package builder

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	cryptossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/sys/unix"
)

// gitRef is a parsed git source: remote URL, ref, subdirectory.
type gitRef struct {
	Remote     string
	Ref        string
	SubDir     string
	Checksum   string
	KeepGitDir *bool
}

// gitSource reports whether an ADD source is a git repository URL, with
// buildkit's rules: git@host:x/y.git, ssh://, git://, http(s) URLs whose
// path ends in .git, github.com/x/y; #ref[:subdir] or the query keys ref,
// tag, branch, subdir, checksum/commit and keep-git-dir.
func gitSource(src string) (*gitRef, bool) {
	rest, frag, _ := strings.Cut(src, "#")
	var scheme string
	switch {
	case strings.HasPrefix(rest, "git@"):
		scheme = "scp"
	case strings.HasPrefix(rest, "ssh://"), strings.HasPrefix(rest, "git://"):
		scheme = "url"
	case strings.HasPrefix(rest, "github.com/"):
		rest, scheme = "https://"+rest, "url"
	case strings.HasPrefix(rest, "http://"), strings.HasPrefix(rest, "https://"):
		u, err := url.Parse(rest)
		if err != nil || !strings.HasSuffix(u.Path, ".git") {
			return nil, false
		}
		scheme = "url"
	default:
		return nil, false
	}
	gr := &gitRef{Remote: rest}
	if scheme == "url" {
		u, err := url.Parse(rest)
		if err != nil || u.Host == "" {
			return nil, false
		}
		q := u.Query()
		u.RawQuery = ""
		gr.Remote = u.String()
		for k, v := range q {
			if len(v) == 0 {
				continue
			}
			switch k {
			case "ref", "tag", "branch":
				gr.Ref = v[0]
			case "subdir":
				gr.SubDir = v[0]
			case "checksum", "commit":
				gr.Checksum = v[0]
			case "keep-git-dir":
				b := v[0] == "" || v[0] == "true" || v[0] == "1"
				gr.KeepGitDir = &b
			}
		}
	}
	if frag != "" {
		ref, sub, _ := strings.Cut(frag, ":")
		if ref != "" {
			gr.Ref = ref
		}
		if sub != "" {
			gr.SubDir = sub
		}
	}
	return gr, true
}

var fullHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// addGit is ADD of a git repository: the ref is resolved to a commit on
// the remote first (a cheap ls-remote), and that commit (with the subdir
// and --keep-git-dir) is the cache key, so an unchanged ref is a hit
// without cloning. The repository is cloned with go-git (shallow for a
// branch or tag) into a temporary directory, the .git directory dropped
// unless --keep-git-dir, and the tree (or its subdir) copied into the
// destination directory; every file gets the commit's time.
func (r *buildRun) addGit(ctx context.Context, st *stageState, createdBy string, spec copySpec, src string, keepGitDir *bool, checksum string) (bool, error) {
	gr, _ := gitSource(src)
	keep := false
	if gr.KeepGitDir != nil {
		keep = *gr.KeepGitDir
	}
	if keepGitDir != nil {
		keep = *keepGitDir
	}
	auth, err := r.gitAuth(gr.Remote)
	if err != nil {
		return false, err
	}
	refName, hash, err := resolveGitRef(ctx, gr.Remote, gr.Ref, auth)
	if err != nil {
		return false, fmt.Errorf("ADD %s: %w", src, err)
	}
	for _, want := range []string{gr.Checksum, checksum} {
		if want != "" && !strings.HasPrefix(hash.String(), want) {
			return false, fmt.Errorf("ADD %s: commit %s does not match checksum %s", src, hash, want)
		}
	}
	subdir := strings.Trim(path.Clean("/"+gr.SubDir), "/")
	spec.Sources, spec.Unpack = nil, false
	key := cacheKey(st.key, "ADD-GIT", spec, gr.Remote, hash.String(), subdir, keep)
	return r.fsStep(ctx, st, key, createdBy, func(rf Rootfs) error {
		dir, err := os.MkdirTemp("", "berth-git-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := cloneAt(ctx, dir, gr.Remote, refName, hash, auth, keep); err != nil {
			return fmt.Errorf("ADD %s: %w", src, err)
		}
		c, err := OpenContext(dir, "")
		if err != nil {
			return err
		}
		defer c.Close()
		if subdir == "" {
			subdir = "."
		}
		ms, err := selectSources(c.fs, []string{subdir}, selectOptions{})
		if err != nil {
			return fmt.Errorf("ADD %s: %w", src, err)
		}
		return writeCopy(ctx, c.fs, rf, ms, spec, st.img.Config.User)
	})
}

// gitAuth authenticates ssh remotes with the agent forwarded as --ssh
// default (or $SSH_AUTH_SOCK); other remotes need none.
func (r *buildRun) gitAuth(remote string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(remote)
	if err != nil {
		return nil, err
	}
	if ep.Protocol != "ssh" {
		return nil, nil
	}
	user := ep.User
	if user == "" {
		user = "git"
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if p := r.o.SSH["default"]; len(p) == 1 {
		sock = p[0]
	}
	if sock == "" {
		return nil, fmt.Errorf("ADD %s: an ssh remote needs an agent (berth build --ssh default)", remote)
	}
	return &gitssh.PublicKeysCallback{User: user, Callback: func() ([]cryptossh.Signer, error) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return nil, err
		}
		return agent.NewClient(c).Signers()
	}}, nil
}

// resolveGitRef finds the commit a ref names on the remote: HEAD when
// empty, a full commit hash as is, else a full ref name, a branch or a tag
// (annotated tags peeled).
func resolveGitRef(ctx context.Context, remote, ref string, auth transport.AuthMethod) (plumbing.ReferenceName, plumbing.Hash, error) {
	if fullHash.MatchString(ref) {
		return "", plumbing.NewHash(ref), nil
	}
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{remote}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return "", plumbing.ZeroHash, fmt.Errorf("list remote refs: %w", err)
	}
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, r := range refs {
		byName[r.Name()] = r
	}
	var candidates []plumbing.ReferenceName
	switch {
	case ref == "":
		candidates = []plumbing.ReferenceName{plumbing.HEAD}
	case strings.HasPrefix(ref, "refs/"):
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	default:
		candidates = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)}
	}
	for _, name := range candidates {
		rf := byName[name]
		if rf == nil {
			continue
		}
		if rf.Type() == plumbing.SymbolicReference {
			name = rf.Target()
			if rf = byName[name]; rf == nil {
				continue
			}
		}
		if peeled := byName[plumbing.ReferenceName(string(name)+"^{}")]; peeled != nil {
			return name, peeled.Hash(), nil
		}
		return name, rf.Hash(), nil
	}
	return "", plumbing.ZeroHash, fmt.Errorf("ref %q not found on the remote", ref)
}

// cloneAt checks out commit hash of remote into dir: a shallow clone of
// refName when known, else a full clone. Every file gets the commit time;
// .git goes unless keep.
func cloneAt(ctx context.Context, dir, remote string, refName plumbing.ReferenceName, hash plumbing.Hash, auth transport.AuthMethod, keep bool) error {
	o := &git.CloneOptions{URL: remote, Auth: auth, NoCheckout: true, Tags: git.NoTags}
	if refName != "" {
		o.ReferenceName, o.SingleBranch, o.Depth = refName, true, 1
	}
	repo, err := git.PlainCloneContext(ctx, dir, false, o)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	commit, err := repo.CommitObject(hash)
	if err != nil {
		// the ref moved between the listing and the clone: fetch the commit
		if ferr := repo.FetchContext(ctx, &git.FetchOptions{Auth: auth, RefSpecs: []config.RefSpec{config.RefSpec(hash.String() + ":refs/berth/want")}}); ferr != nil && ferr != git.NoErrAlreadyUpToDate {
			return fmt.Errorf("commit %s: %w", hash, err)
		}
		if commit, err = repo.CommitObject(hash); err != nil {
			return fmt.Errorf("commit %s: %w", hash, err)
		}
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: hash, Force: true}); err != nil {
		return fmt.Errorf("checkout %s: %w", hash, err)
	}
	if !keep {
		if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
			return err
		}
	}
	t := commit.Committer.When
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		return lchtimes(p, t)
	})
}

func lchtimes(p string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
