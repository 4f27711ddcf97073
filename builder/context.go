package builder

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"
)

// Context is a build context directory with its ignore rules. Everything the
// builder reads from it goes through fs, which cannot leave the directory.
type Context struct {
	Dir    string
	ignore *patternmatcher.PatternMatcher // nil: nothing ignored
	fs     *srcFS
}

// OpenContext opens dir as a build context. The ignore file is
// <dockerfile>.dockerignore next to the Dockerfile when it exists, else
// .dockerignore at the root of the context.
func OpenContext(dir, dockerfile string) (*Context, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fs, err := openSrcFS(abs, false)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	c := &Context{Dir: abs, fs: fs}
	patterns, err := readIgnore(abs, dockerfile)
	if err != nil {
		fs.Close()
		return nil, err
	}
	if len(patterns) > 0 {
		if c.ignore, err = patternmatcher.New(patterns); err != nil {
			fs.Close()
			return nil, fmt.Errorf(".dockerignore: %w", err)
		}
	}
	return c, nil
}

// Close releases the context's directory handle.
func (c *Context) Close() error { return c.fs.Close() }

func readIgnore(ctxDir, dockerfile string) ([]string, error) {
	var candidates []string
	if dockerfile != "" {
		df := dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(ctxDir, df)
		}
		candidates = append(candidates, df+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(ctxDir, ".dockerignore"))
	for _, name := range candidates {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		patterns, err := ignorefile.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return patterns, nil
	}
	return nil, nil
}

// Ignored says whether rel (slash-separated, relative to the context root)
// is excluded from the context.
func (c *Context) Ignored(rel string) bool {
	if c.ignore == nil || rel == "." || rel == "" {
		return false
	}
	ok, err := c.ignore.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// cleanSource turns a COPY/ADD source into a path relative to the context
// root. Absolute paths are relative to the root, as in Docker; a ".." that
// climbs above the root is refused rather than silently clamped.
func cleanSource(src string) (string, error) {
	s := filepath.ToSlash(src)
	if !strings.HasPrefix(s, "/") {
		if p := path.Clean(s); p == ".." || strings.HasPrefix(p, "../") {
			return "", fmt.Errorf("forbidden path outside the build context: %s", src)
		}
	}
	rel := strings.TrimPrefix(path.Clean("/"+s), "/")
	if rel == "" {
		rel = "."
	}
	return rel, nil
}

// srcFS reads a directory tree through one directory handle. A build
// context refuses symlinks that lead out of it (RESOLVE_BENEATH); an image
// rootfs resolves them as the image would see them (RESOLVE_IN_ROOT).
type srcFS struct {
	root     *os.File
	rootPath string
	inRoot   bool
}

func openSrcFS(dir string, inRoot bool) (*srcFS, error) {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &srcFS{root: f, rootPath: dir, inRoot: inRoot}, nil
}

func (s *srcFS) Close() error { return s.root.Close() }

// open opens rel; follow says whether a final symlink is followed.
// Intermediate symlinks are always resolved within the tree.
func (s *srcFS) open(rel string, flags int, follow bool) (*os.File, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_NO_MAGICLINKS}
	if s.inRoot {
		how.Resolve |= unix.RESOLVE_IN_ROOT
	} else {
		how.Resolve |= unix.RESOLVE_BENEATH
	}
	if !follow {
		how.Flags |= unix.O_NOFOLLOW
	}
	for {
		fd, err := unix.Openat2(int(s.root.Fd()), rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.EXDEV {
			return nil, fmt.Errorf("%s: symlink or path leads outside the build context", rel)
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: rel, Err: err}
		}
		return os.NewFile(uintptr(fd), rel), nil
	}
}

// lstat describes rel without following a final symlink.
func (s *srcFS) lstat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	f, err := s.open(rel, unix.O_PATH, false)
	if err != nil {
		return st, err
	}
	defer f.Close()
	err = unix.Fstat(int(f.Fd()), &st)
	return st, err
}

// stat describes rel, following a final symlink within the tree.
func (s *srcFS) stat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	f, err := s.open(rel, unix.O_PATH, true)
	if err != nil {
		return st, err
	}
	defer f.Close()
	err = unix.Fstat(int(f.Fd()), &st)
	return st, err
}

func (s *srcFS) readlink(rel string) (string, error) {
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	d, err := s.open(strings.TrimSuffix(dir, "/"), unix.O_PATH|unix.O_DIRECTORY, true)
	if err != nil {
		return "", err
	}
	defer d.Close()
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(int(d.Fd()), base, buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: rel, Err: err}
	}
	return string(buf[:n]), nil
}

// readDir lists the names in directory rel.
func (s *srcFS) readDir(rel string) ([]string, error) {
	f, err := s.open(rel, unix.O_RDONLY|unix.O_DIRECTORY, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
