package builder

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	digest "github.com/opencontainers/go-digest"
)

// copySpec is what COPY and ADD share.
type copySpec struct {
	Op       string
	From     string
	Sources  []string
	Inline   []instructions.SourceContent
	Dest     string
	Chown    string
	Chmod    string
	Excludes []string
	Parents  bool
	Unpack   bool // ADD: extract local archives
	Workdir  string
	// Link: the files form a layer of their own, written into an empty
	// rootfs and keyed without the steps before (omitempty keeps the keys
	// of plain copies as they were)
	Link bool `json:",omitempty"`
}

func (r *buildRun) copy(ctx context.Context, st *stageState, c *instructions.CopyCommand) (bool, error) {
	return r.copyStep(ctx, st, c.String(), copySpec{Op: "COPY", From: c.From, Sources: c.SourcePaths,
		Inline: c.SourceContents, Dest: c.DestPath, Chown: c.Chown, Chmod: c.Chmod,
		Excludes: c.ExcludePatterns, Parents: c.Parents, Workdir: st.img.Config.WorkingDir, Link: c.Link})
}

func (r *buildRun) add(ctx context.Context, st *stageState, c *instructions.AddCommand) (bool, error) {
	unpack := c.Unpack == nil || *c.Unpack
	spec := copySpec{Op: "ADD", Inline: c.SourceContents, Dest: c.DestPath, Chown: c.Chown,
		Chmod: c.Chmod, Excludes: c.ExcludePatterns, Unpack: unpack, Workdir: st.img.Config.WorkingDir, Link: c.Link}
	var urls []string
	for _, s := range c.SourcePaths {
		if _, ok := gitSource(s); ok {
			if len(c.SourcePaths) != 1 {
				return false, fmt.Errorf("ADD of a git repository takes it as the only source")
			}
			return r.addGit(ctx, st, c.String(), spec, s, c.KeepGitDir, c.Checksum)
		}
		if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
			urls = append(urls, s)
		} else {
			spec.Sources = append(spec.Sources, s)
		}
	}
	if c.Checksum != "" && (len(urls) != 1 || len(spec.Sources) > 0) {
		return false, fmt.Errorf("ADD --checksum needs exactly one URL source")
	}
	if len(urls) > 0 {
		if len(spec.Sources) > 0 || len(spec.Inline) > 0 {
			return false, fmt.Errorf("ADD cannot mix URLs with other sources in berth")
		}
		return r.addURLs(ctx, st, c.String(), spec, urls, c.Checksum)
	}
	return r.copyStep(ctx, st, c.String(), spec)
}

// copyStep keys the copy by what it would write, then writes it into a
// rootfs unless the cache has the layer.
func (r *buildRun) copyStep(ctx context.Context, st *stageState, createdBy string, spec copySpec) (bool, error) {
	src, err := r.source(ctx, spec.From)
	if err != nil {
		return false, err
	}
	defer src.close()
	if len(spec.Inline) > 0 {
		dir, err := writeInline(spec.Inline)
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(dir)
		c, err := OpenContext(dir, "")
		if err != nil {
			return false, err
		}
		src = &copySource{isContext: true, fs: c.fs, owned: true, r: r}
		defer src.close()
		spec.Sources = nil
		for _, f := range spec.Inline {
			spec.Sources = append(spec.Sources, f.Path)
		}
		spec.Parents = false
	}
	var ms []match
	var fs *srcFS
	keyPart := src.key
	selectAll := func() error {
		var ignored func(string) bool
		var err error
		if fs, ignored, err = src.open(ctx); err != nil {
			return err
		}
		ms, err = selectSources(fs, spec.Sources, selectOptions{excludes: spec.Excludes, parents: spec.Parents, ignored: ignored})
		return err
	}
	if keyPart == "" {
		if err := selectAll(); err != nil {
			return false, err
		}
		var fh *fileHashes
		if fs == r.ctx.fs {
			fh = r.hashes
		}
		if keyPart, err = digestMatches(fs, ms, fh); err != nil {
			return false, err
		}
	}
	do := func(rf Rootfs) error {
		if fs == nil {
			if err := selectAll(); err != nil {
				return err
			}
		}
		return writeCopy(ctx, fs, rf, ms, spec, st.img.Config.User)
	}
	var direct directFunc
	if lw, ok := r.b.store.(LayerWriter); ok && !spec.Unpack {
		direct = func(rf Rootfs) (*Layer, error) {
			if fs == nil {
				if err := selectAll(); err != nil {
					return nil, err
				}
			}
			root, err := openRootDir(rf.Path())
			if err != nil {
				return nil, err
			}
			defer root.Close()
			o, err := copyOpts(root, spec)
			if err != nil {
				return nil, err
			}
			plan, err := planCopy(root, ms, spec.Dest, spec.Workdir, o)
			if err != nil {
				return nil, err
			}
			return lw.WriteLayer(ctx, func(w io.Writer) error { return plan.write(ctx, fs, w) })
		}
	}
	if spec.Link {
		return r.linkStep(ctx, st, cacheKey("", spec.Op+"-LINK", spec, keyPart), createdBy, do, direct)
	}
	key := cacheKey(st.key, spec.Op, spec, keyPart)
	return r.layerStep(ctx, st, key, key, st.layers, createdBy, do, direct)
}

// copyOpts turns --chown and --chmod into copy options; user names are
// looked up in the image.
func copyOpts(root *rootDir, spec copySpec) (copyOptions, error) {
	o := copyOptions{uid: -1, gid: -1, keepOwner: spec.From != ""}
	if spec.Chown != "" {
		uid, gid, _, err := resolveUser(root, spec.Chown)
		if err != nil {
			return o, fmt.Errorf("--chown=%s: %w", spec.Chown, err)
		}
		o.uid, o.gid = uid, gid
	}
	if spec.Chmod != "" {
		f, err := parseChmod(spec.Chmod)
		if err != nil {
			return o, err
		}
		o.chmod = f
	}
	return o, nil
}

// writeCopy writes the selected sources into the rootfs, extracting local
// archives for ADD.
func writeCopy(ctx context.Context, fs *srcFS, rf Rootfs, ms []match, spec copySpec, user string) error {
	root, err := openRootDir(rf.Path())
	if err != nil {
		return err
	}
	defer root.Close()
	o, err := copyOpts(root, spec)
	if err != nil {
		return err
	}
	var plain []match
	for _, m := range ms {
		if spec.Unpack && !m.dir {
			done, err := extractArchive(ctx, fs, root, m.rel, spec.Dest, spec.Workdir)
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}
		plain = append(plain, m)
	}
	if len(plain) == 0 {
		return nil
	}
	return copyMatches(fs, root, plain, spec.Dest, spec.Workdir, o)
}

// writeInline materialises heredoc sources (COPY <<EOF) in a temporary
// directory that then acts as the copy's context.
func writeInline(files []instructions.SourceContent) (string, error) {
	dir, err := os.MkdirTemp("", "berth-inline-")
	if err != nil {
		return "", err
	}
	for _, f := range files {
		name, err := cleanSource(f.Path)
		if err != nil || name == "." || strings.Contains(name, "/") {
			os.RemoveAll(dir)
			return "", fmt.Errorf("invalid heredoc name %q", f.Path)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(f.Data), 0o644); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// addURLs downloads ADD sources; the content digest is the cache key, so an
// unchanged remote file is a cache hit. Downloads are never unpacked.
func (r *buildRun) addURLs(ctx context.Context, st *stageState, createdBy string, spec copySpec, urls []string, checksum string) (bool, error) {
	dir, err := os.MkdirTemp("", "berth-add-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	spec.Sources = nil
	for _, u := range urls {
		name, err := download(ctx, u, dir)
		if err != nil {
			return false, err
		}
		if checksum != "" {
			if err := verifyChecksum(filepath.Join(dir, name), checksum); err != nil {
				return false, fmt.Errorf("ADD %s: %w", u, err)
			}
		}
		spec.Sources = append(spec.Sources, name)
	}
	c, err := OpenContext(dir, "")
	if err != nil {
		return false, err
	}
	defer c.Close()
	ms, err := selectSources(c.fs, spec.Sources, selectOptions{})
	if err != nil {
		return false, err
	}
	sum, err := digestMatches(c.fs, ms, nil)
	if err != nil {
		return false, err
	}
	spec.Unpack = false
	key := cacheKey(st.key, "ADD-URL", spec, urls, sum)
	return r.fsStep(ctx, st, key, createdBy, func(rf Rootfs) error {
		return writeCopy(ctx, c.fs, rf, ms, spec, st.img.Config.User)
	})
}

// verifyChecksum checks ADD --checksum=sha256:<hex> against a download.
func verifyChecksum(name, want string) error {
	d, err := digest.Parse(want)
	if err != nil {
		return fmt.Errorf("invalid --checksum %q: %w", want, err)
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := d.Algorithm().FromReader(f)
	if err != nil {
		return err
	}
	if got != d {
		return fmt.Errorf("checksum mismatch: got %s, want %s", got, d)
	}
	return nil
}

func download(ctx context.Context, rawURL, dir string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		name = "index.html"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ADD %s: %s", rawURL, resp.Status)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return "", err
	}
	f.Close()
	mtime := time.Unix(0, 0)
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mtime = lm
	}
	os.Chtimes(filepath.Join(dir, name), mtime, mtime)
	return name, nil
}
