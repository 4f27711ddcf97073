package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mode says what whiteouts become.
type Mode int

const (
	// Overlay writes one layer into an empty directory that overlayfs will
	// stack: whiteouts become 0/0 character devices and opaque xattrs.
	Overlay Mode = iota
	// Flatten applies a layer onto a directory holding the layers below it:
	// whiteouts delete what they name.
	Flatten
)

// Limits bound what one archive may create, against archive bombs.
type Limits struct {
	MaxEntries int   // tar entries
	MaxBytes   int64 // total bytes of regular files
}

// DefaultLimits fit any reasonable image layer.
var DefaultLimits = Limits{MaxEntries: 1 << 20, MaxBytes: 64 << 30}

// Options tune Extract.
type Options struct {
	Mode   Mode
	Limits Limits // zero fields take DefaultLimits
}

// Stats describe what Extract did.
type Stats struct {
	Entries        int
	Bytes          int64
	SkippedDevices int // device nodes are never created
}

// ErrUnsafe marks an entry that would escape the target or is malformed.
var ErrUnsafe = errors.New("unsafe archive entry")

// ErrLimit marks an archive over its Limits.
var ErrLimit = errors.New("archive exceeds limits")

const maxNameLen = 4096

type dirMeta struct {
	name         string
	mode         uint32
	atime, mtime time.Time
}

type extractor struct {
	ctx      context.Context
	root     int
	opts     Options
	stats    Stats
	chown    bool
	buf      []byte
	dirs     []dirMeta
	created  map[string]bool // Flatten: names this layer created, spared by its opaque whiteouts
	symlinks bool            // the archive made a symlink: names may alias
	seen     map[string]bool // Overlay: names created so far; others cannot exist in the empty target

	cacheDir string // last parent directory resolved, and its O_PATH fd
	cacheFD  int
}

// Extract writes the plain tar stream r into dir, which must exist. On error
// dir holds a partial result: callers extract into a scratch directory and
// rename it into place only on success.
func Extract(ctx context.Context, dir string, r io.Reader, o Options) (Stats, error) {
	if o.Limits.MaxEntries == 0 {
		o.Limits.MaxEntries = DefaultLimits.MaxEntries
	}
	if o.Limits.MaxBytes == 0 {
		o.Limits.MaxBytes = DefaultLimits.MaxBytes
	}
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(root)
	x := &extractor{ctx: ctx, root: root, opts: o, chown: os.Geteuid() == 0,
		buf: make([]byte, 1<<20), cacheFD: -1}
	if o.Mode == Flatten {
		x.created = map[string]bool{}
	} else {
		x.seen = map[string]bool{}
	}
	defer x.invalidate()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.stats, fmt.Errorf("read tar: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return x.stats, err
		}
		x.stats.Entries++
		if x.stats.Entries > o.Limits.MaxEntries {
			return x.stats, fmt.Errorf("%w: more than %d entries", ErrLimit, o.Limits.MaxEntries)
		}
		if err := x.entry(hdr, tr); err != nil {
			return x.stats, fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	return x.stats, x.finishDirs()
}

// CleanName turns a tar entry name into a path relative to the target, or
// fails for names that climb out of it.
func CleanName(name string) (string, error) {
	if len(name) > maxNameLen || strings.IndexByte(name, 0) >= 0 {
		return "", ErrUnsafe
	}
	c := strings.TrimLeft(path.Clean("/"+strings.TrimLeft(name, "/")), "/")
	// A relative name that Clean leaves climbing out is refused rather
	// than clamped, as docker does.
	if rel := path.Clean(strings.TrimLeft(name, "/")); rel == ".." || strings.HasPrefix(rel, "../") {
		return "", ErrUnsafe
	}
	if c == "" {
		return ".", nil
	}
	return c, nil
}

func split(name string) (dir, base string) {
	dir, base = path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	return dir, base
}

func (x *extractor) invalidate() {
	if x.cacheFD >= 0 {
		unix.Close(x.cacheFD)
	}
	x.cacheFD, x.cacheDir = -1, ""
}

func (x *extractor) parent(dir string) (int, error) {
	if x.cacheFD >= 0 && x.cacheDir == dir {
		return x.cacheFD, nil
	}
	fd, err := mkdirAllIn(x.root, dir)
	if err != nil {
		return -1, err
	}
	x.invalidate()
	x.cacheFD, x.cacheDir = fd, dir
	return fd, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	name, err := CleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil
	}
	dir, base := split(name)
	if strings.HasPrefix(base, ".wh.") {
		return x.whiteout(dir, base)
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		x.stats.SkippedDevices++
		return nil
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	}
	pfd, err := x.parent(dir)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	checked := x.mayExist(name)
	if checked && unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		if !(hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
			if err := removeAt(pfd, base); err != nil {
				return err
			}
			// The removed path may have been a directory some cached
			// descriptor points into.
			x.invalidate()
			if pfd, err = x.parent(dir); err != nil {
				return err
			}
		}
	}
	if x.created != nil {
		x.created[name] = true
	}
	if x.seen != nil {
		x.seen[name] = true
	}
	err = x.create(pfd, name, base, hdr, r)
	if err == unix.EEXIST && !checked {
		// A directory implied by an earlier entry's path, now replaced.
		if err := removeAt(pfd, base); err != nil {
			return err
		}
		x.invalidate()
		if pfd, err = x.parent(dir); err != nil {
			return err
		}
		err = x.create(pfd, name, base, hdr, r)
	}
	return err
}

func (x *extractor) create(pfd int, name, base string, hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.mkdir(pfd, name, base, hdr)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return x.file(pfd, base, hdr, r)
	case tar.TypeSymlink:
		x.symlinks = true
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
		return x.linkMeta(pfd, base, hdr)
	case tar.TypeLink:
		return x.hardlink(pfd, base, hdr.Linkname)
	case tar.TypeFifo:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|mode(hdr), 0); err != nil {
			return err
		}
		if err := x.linkMeta(pfd, base, hdr); err != nil {
			return err
		}
		// Undo the umask. Kernels before 6.6 lack fchmodat2 (no
		// AT_SYMLINK_NOFOLLOW): keep the umasked mode rather than risk
		// following a link.
		err := unix.Fchmodat(pfd, base, mode(hdr), unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
			return nil
		}
		return err
	}
	return nil // unknown types are skipped, as tar(1) does
}

// mayExist saves a stat per entry when extracting into an empty directory:
// there, only names an earlier entry created can exist. A name reached
// through a symlink is not in seen under that spelling, so anything below
// a symlink is always checked.
func (x *extractor) mayExist(name string) bool {
	if x.seen == nil || x.symlinks {
		return true
	}
	return x.seen[name]
}

func mode(hdr *tar.Header) uint32 { return uint32(hdr.Mode & 0o7777) }

func (x *extractor) mkdir(pfd int, name, base string, hdr *tar.Header) error {
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
		return err
	}
	if len(hdr.PAXRecords) == 0 {
		// No xattrs: owner by name, never following a final symlink.
		if x.chown {
			if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		}
	} else {
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = x.fdMeta(fd, hdr)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	// Mode and times last: children would change the times, and a
	// read-only mode would stop an unprivileged extraction.
	x.dirs = append(x.dirs, dirMeta{name: name, mode: mode(hdr), atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

func (x *extractor) file(pfd int, base string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size < 0 || x.stats.Bytes+hdr.Size > x.opts.Limits.MaxBytes {
		return fmt.Errorf("%w: more than %d bytes", ErrLimit, x.opts.Limits.MaxBytes)
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(fdWriter(fd), io.LimitReader(r, hdr.Size), x.buf)
	x.stats.Bytes += n
	if err == nil && n != hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = x.fdMeta(fd, hdr)
	}
	if err == nil {
		err = unix.Fchmod(fd, mode(hdr))
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
}

// fdWriter writes to a raw descriptor: an os.File per extracted file
// costs an fcntl and a finalizer for nothing.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := unix.Write(int(w), p[written:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

func (x *extractor) hardlink(pfd int, base, target string) error {
	t, err := CleanName(target)
	if err != nil || t == "." {
		return ErrUnsafe
	}
	tdir, tbase := split(t)
	tfd, err := inRoot(x.root, tdir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("link target %s: %w", target, err)
	}
	defer unix.Close(tfd)
	// Without AT_SYMLINK_FOLLOW the last component is not followed: a link
	// to a symlink links the symlink itself, inside the root.
	return unix.Linkat(tfd, tbase, pfd, base, 0)
}

// fdMeta sets owner and xattrs through a descriptor, so nothing follows a link.
func (x *extractor) fdMeta(fd int, hdr *tar.Header) error {
	if x.chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || skipXattr(attr) {
			continue
		}
		err := unix.Fsetxattr(fd, attr, []byte(v), 0)
		if err != nil && err != unix.ENOTSUP && err != unix.EPERM {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return nil
}

// skipXattr refuses overlayfs' own attributes: an archive must not forge
// opaque directories or redirects.
func skipXattr(attr string) bool {
	return strings.HasPrefix(attr, "trusted.overlay.") || strings.HasPrefix(attr, "user.overlay.")
}

func (x *extractor) linkMeta(pfd int, base string, hdr *tar.Header) error {
	if x.chown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
}

func setTimes(pfd int, base string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		// O_NOFOLLOW: a later entry may have replaced the directory with a
		// symlink; its target must not receive this mode.
		fd, err := inRoot(x.root, d.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			continue // replaced or removed by a later entry
		}
		err = unix.Fchmod(fd, d.mode)
		if err == nil {
			err = setTimes(fd, ".", d.atime, d.mtime)
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
	}
	return nil
}

func (x *extractor) whiteout(dir, base string) error {
	pfd, err := x.parent(dir)
	if err != nil {
		return err
	}
	if base == OpaqueWhiteout {
		if x.opts.Mode == Flatten {
			err := clearDirAt(pfd, ".", func(child string) bool { return x.created[path.Join(dir, child)] })
			x.invalidate()
			return err
		}
		fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fsetxattr(fd, OpaqueXattr, []byte("y"), 0)
	}
	if strings.HasPrefix(base, WhiteoutMeta) {
		return nil // aufs bookkeeping (.wh..wh.plnk and the like)
	}
	name := strings.TrimPrefix(base, WhiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return ErrUnsafe
	}
	if err := removeAt(pfd, name); err != nil {
		return err
	}
	x.invalidate()
	if x.opts.Mode == Flatten {
		return nil
	}
	if pfd, err = x.parent(dir); err != nil {
		return err
	}
	if x.seen != nil {
		x.seen[path.Join(dir, name)] = true
	}
	return unix.Mknodat(pfd, name, unix.S_IFCHR, 0)
}

// Whiteout names, per the OCI image spec, and overlayfs' opaque marker.
const (
	WhiteoutPrefix = ".wh."
	WhiteoutMeta   = ".wh..wh."
	OpaqueWhiteout = ".wh..wh..opq"
	OpaqueXattr    = "trusted.overlay.opaque"
)
