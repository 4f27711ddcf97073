package builder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/fsroot"
)

// copyOptions are the COPY/ADD flags that change what is written.
type copyOptions struct {
	uid, gid  int       // -1: keep (context files become 0:0 unless keepOwner)
	keepOwner bool      // sources from an image keep their owners
	chmod     chmodFunc // nil: keep the source's mode
}

// destination resolves a COPY destination against WORKDIR and says whether
// it names a directory (trailing slash).
func destination(dest, workdir string) (string, bool) {
	dir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		if workdir == "" {
			workdir = "/"
		}
		dest = path.Join(workdir, dest)
	}
	return path.Clean(dest), dir
}

// rootDir is an image rootfs being written. Every path is resolved inside it
// (RESOLVE_IN_ROOT), so symlinks in the image can never send a write out.
type rootDir struct {
	f *os.File
}

func openRootDir(dir string) (*rootDir, error) {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &rootDir{f: f}, nil
}

func (r *rootDir) Close() error { return r.f.Close() }

func (r *rootDir) openIn(p string, flags int) (*os.File, error) {
	fd, err := fsroot.Openat(int(r.f.Fd()), p, flags, 0, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// mkdirAll creates dir (absolute in the image) and returns a handle on it;
// created directories get mode 0755 and the copy's owner.
func (r *rootDir) mkdirAll(dir string, o copyOptions) (*os.File, error) {
	if d, err := r.openIn(dir, unix.O_PATH|unix.O_DIRECTORY); err == nil {
		return d, nil
	}
	var created []string
	for p := dir; p != "/" && p != "."; p = path.Dir(p) {
		if _, err := r.openIn(p, unix.O_PATH); err == nil {
			break
		}
		created = append(created, p)
	}
	d, err := pathrs.MkdirAllHandle(r.f, dir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if o.uid >= 0 {
		for _, p := range created {
			if f, err := r.openIn(p, unix.O_PATH|unix.O_DIRECTORY); err == nil {
				unix.Fchownat(int(f.Fd()), "", o.uid, o.gid, unix.AT_EMPTY_PATH)
				f.Close()
			}
		}
	}
	return d, nil
}

// isDir says whether p exists in the image as a directory (after symlinks).
func (r *rootDir) isDir(p string) bool {
	f, err := r.openIn(p, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// copyMatches writes selected sources to dest with Docker's rules (see
// placeMatches).
func copyMatches(fs *srcFS, root *rootDir, ms []match, dest, workdir string, o copyOptions) error {
	return placeMatches(root, ms, dest, workdir,
		func(m *match, target string) error { return copyTree(fs, root, *m, target, o) },
		func(m *match, name string) error { return copyFile(fs, root, &m.entries[0], name, o) })
}

// placeMatches applies Docker's rules for where selected sources go: a
// directory's contents go into dest; a file goes into dest when dest ends
// with "/" or is a directory, else becomes dest; several sources need a
// directory destination. It calls dir with the directory a directory
// source's content goes into, file with the image path a file becomes.
func placeMatches(root *rootDir, ms []match, dest, workdir string, dir, file func(m *match, p string) error) error {
	dst, wantDir := destination(dest, workdir)
	many := len(ms) > 1
	if many && !wantDir {
		return fmt.Errorf("when using COPY with more than one source file, the destination must be a directory and end with a /")
	}
	toDir := wantDir || many || root.isDir(dst)
	for i := range ms {
		m := &ms[i]
		target := dst
		if m.prefix != "" {
			target = path.Join(dst, m.prefix)
			if !m.dir {
				target = path.Dir(target)
			}
		}
		if m.dir {
			if err := dir(m, target); err != nil {
				return err
			}
			continue
		}
		name := target
		if toDir || m.prefix != "" {
			name = path.Join(target, path.Base(m.rel))
		}
		if err := file(m, name); err != nil {
			return err
		}
	}
	return nil
}

func copyTree(fs *srcFS, root *rootDir, m match, target string, o copyOptions) error {
	d, err := root.mkdirAll(target, o)
	if err != nil {
		return err
	}
	d.Close()
	buf := make([]byte, 256<<10)
	for i := range m.entries {
		e := &m.entries[i]
		if err := writeEntry(fs, root, e, path.Join(target, e.dst), o, buf); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(fs *srcFS, root *rootDir, e *entry, name string, o copyOptions) error {
	d, err := root.mkdirAll(path.Dir(name), o)
	if err != nil {
		return err
	}
	d.Close()
	return writeEntry(fs, root, e, name, o, make([]byte, 256<<10))
}

// writeEntry creates one object. Its parent is resolved in the image root;
// the object itself is created with O_NOFOLLOW semantics: an existing
// symlink at that name is replaced, never written through.
func writeEntry(fs *srcFS, root *rootDir, e *entry, name string, o copyOptions, buf []byte) error {
	parent, err := root.openIn(path.Dir(name), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd, base := int(parent.Fd()), path.Base(name)
	if base == "/" || base == "." || base == ".." {
		return fmt.Errorf("invalid destination %q", name)
	}
	uid, gid := 0, 0
	if o.keepOwner {
		uid, gid = int(e.st.Uid), int(e.st.Gid)
	}
	if o.uid >= 0 {
		uid, gid = o.uid, o.gid
	}
	perm := uint32(e.st.Mode & 0o7777)
	if o.chmod != nil {
		perm = o.chmod(perm, e.isDir())
	}
	if err := clearFor(pfd, base, e.isDir()); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case e.isDir():
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
			return &os.PathError{Op: "mkdir", Path: name, Err: err}
		}
		f, err := openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		defer f.Close()
		return finish(f, uid, gid, perm, e)
	case e.isLink():
		if err := unix.Symlinkat(e.link, pfd, base); err != nil {
			return &os.PathError{Op: "symlink", Path: name, Err: err}
		}
		unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
		ts := []unix.Timespec{e.st.Atim, e.st.Mtim}
		unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
		return nil
	case e.isReg():
		src, err := fs.open(e.rel, unix.O_RDONLY, true)
		if err != nil {
			return err
		}
		defer src.Close()
		f, err := openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyBuffer(onlyWriter{f}, src, buf); err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
		return finish(f, uid, gid, perm, e)
	}
	return nil // devices, fifos and sockets are not copied
}

type onlyWriter struct{ io.Writer }

// clearFor removes what is at base unless it is a directory that a
// directory is merged into.
func clearFor(pfd int, base string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case isDir && dir:
		return nil
	case isDir:
		return fmt.Errorf("cannot replace a directory with a file")
	}
	return unix.Unlinkat(pfd, base, 0)
}

func openat(dfd int, name string, flags int) (*os.File, error) {
	fd, err := unix.Openat(dfd, name, flags|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func finish(f *os.File, uid, gid int, perm uint32, e *entry) error {
	fd := int(f.Fd())
	if os.Geteuid() == 0 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return &os.PathError{Op: "chown", Path: f.Name(), Err: err}
		}
	}
	// chmod after chown: chown clears setuid bits
	if err := unix.Fchmod(fd, perm); err != nil {
		return &os.PathError{Op: "chmod", Path: f.Name(), Err: err}
	}
	return unix.Futimes(fd, []unix.Timeval{unix.NsecToTimeval(unix.TimespecToNsec(e.st.Atim)), unix.NsecToTimeval(unix.TimespecToNsec(e.st.Mtim))})
}
