package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/fsroot"

	"github.com/berth-dev/berth/store/archive"
)

type cpOptions struct {
	index   int
	archive bool
	follow  bool
}

func init() {
	register(func() *cobra.Command {
		var o cpOptions
		cmd := &cobra.Command{
			Use:   "cp [OPTIONS] SERVICE:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- SERVICE:DEST_PATH",
			Short: "Copy files/folders between a service container and the local filesystem",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx, cancel := signalContext(cmd)
				defer cancel()
				return runCp(ctx, args[0], args[1], o)
			},
		}
		f := cmd.Flags()
		f.IntVar(&o.index, "index", 1, "Index of the container if the service has several replicas")
		f.BoolVarP(&o.archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
		f.BoolVarP(&o.follow, "follow-link", "L", false, "Always follow a symbolic link in SRC_PATH")
		return cmd
	})
}

// splitContainerPath reads SERVICE:PATH; a path with a slash before the
// colon (./a:b) is local, as docker's rule.
func splitContainerPath(s string) (service, p string, ok bool) {
	i := strings.Index(s, ":")
	if i <= 0 || strings.Contains(s[:i], "/") {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}

func runCp(ctx context.Context, src, dst string, o cpOptions) error {
	srcSvc, srcPath, fromContainer := splitContainerPath(src)
	dstSvc, dstPath, toContainer := splitContainerPath(dst)
	if fromContainer == toContainer {
		return errors.New("cp: exactly one of the paths must be SERVICE:PATH")
	}
	service := srcSvc
	if toContainer {
		service = dstSvc
	}
	t, err := openProject(ctx)
	if err != nil {
		return err
	}
	cs, err := t.containers(ctx, []string{service}, false)
	if err != nil {
		return err
	}
	pid := 0
	for _, c := range cs {
		if c.Number == o.index && c.Pid > 0 {
			pid = c.Pid
		}
	}
	if pid == 0 {
		return fmt.Errorf("cp: service %s has no running container number %d", service, o.index)
	}
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cp: container root: %w", err)
	}
	defer unix.Close(root)
	pr, pw := io.Pipe()
	var werr error
	go func() {
		if fromContainer {
			werr = tarFromContainer(ctx, pw, root, srcPath, o)
		} else {
			werr = tarFromHost(ctx, pw, srcPath, o)
		}
		pw.CloseWithError(werr)
	}()
	if fromContainer {
		err = extractOnHost(ctx, pr, dstPath, srcPath)
	} else {
		err = extractInContainer(ctx, pr, root, dstPath, srcPath)
	}
	pr.CloseWithError(err)
	if werr != nil {
		return fmt.Errorf("cp: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	return nil
}

// openIn resolves p inside the container's root: symlinks and ".." can
// never lead out of it (openat2 RESOLVE_IN_ROOT).
func openIn(root int, p string, follow bool) (int, error) {
	flags := unix.O_PATH
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := fsroot.Openat(root, p, flags, 0, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// tarFromContainer streams SRC (resolved inside the container) as a tar
// whose top entry is SRC's base name ("." for "dir/.": its content).
func tarFromContainer(ctx context.Context, w io.Writer, root int, src string, o cpOptions) error {
	fd, err := openIn(root, src, o.follow)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// The fd is the resolved source; /proc/self/fd/N is a link to it that
	// lstat would report as a link, so look at the fd itself.
	var st unix.Stat_t
	if err := unix.Fstatat(fd, "", &st, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return tarTree(ctx, w, fdPath(fd)+"/.", topName(src), o)
	case unix.S_IFLNK:
		buf := make([]byte, 4096)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(w)
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: topName(src), Linkname: string(buf[:n]), Mode: 0o777}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		return tw.Close()
	}
	fi, err := os.Stat(fdPath(fd))
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := tarOne(tw, fdPath(fd), topName(src), fi, o); err != nil {
		return err
	}
	return tw.Close()
}

func tarFromHost(ctx context.Context, w io.Writer, src string, o cpOptions) error {
	p := src
	if o.follow {
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return err
		}
		p = real
	}
	return tarTree(ctx, w, p, topName(src), o)
}

func topName(src string) string {
	if strings.HasSuffix(src, "/.") {
		return "."
	}
	return path.Base(path.Clean("/" + src))
}

// tarTree writes p (file, link or directory) under the name top; without
// -a, owners become root, as docker cp does.
func tarTree(ctx context.Context, w io.Writer, p, top string, o cpOptions) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if !fi.IsDir() {
		if err := tarOne(tw, p, top, fi, o); err != nil {
			return err
		}
		return tw.Close()
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.WriteDir(ctx, pw, p, archive.WriteOptions{})) }()
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		hdr.Name = path.Join(top, hdr.Name)
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = path.Join(top, hdr.Linkname)
		}
		if !o.archive {
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

func tarOne(tw *tar.Writer, p, name string, fi os.FileInfo, o cpOptions) error {
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		l, err := os.Readlink(p)
		if err != nil {
			return err
		}
		link = l
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if !o.archive {
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// target decides docker cp's naming: into DEST when it is an existing
// directory, else as DEST itself. It returns the directory to extract in
// and the name the top entry must take there.
func target(destIsDir bool, dest, src string) (dir, name string) {
	top := topName(src)
	if destIsDir {
		return dest, top
	}
	return path.Dir(path.Clean("/" + dest)), path.Base(path.Clean("/" + dest))
}

func extractOnHost(ctx context.Context, r io.Reader, dest, src string) error {
	if dest == "-" {
		_, err := io.Copy(os.Stdout, r)
		return err
	}
	fi, err := os.Stat(dest)
	dir, name := target(err == nil && fi.IsDir(), dest, src)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if !filepath.IsAbs(dest) {
		abs, _ := filepath.Abs(dest)
		dir, name = target(err == nil && fi.IsDir(), abs, src)
	}
	return extractRenamed(ctx, r, dir, topName(src), name)
}

func extractInContainer(ctx context.Context, r io.Reader, root int, dest, src string) error {
	destIsDir := false
	if fd, err := openIn(root, dest, true); err == nil {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			destIsDir = true
		}
		unix.Close(fd)
	}
	dir, name := target(destIsDir, dest, src)
	fd, err := openIn(root, dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return extractRenamed(ctx, r, fdPath(fd), topName(src), name)
}

// extractRenamed extracts the stream into dir with its top entry renamed
// from top to name; the extractor keeps every entry inside dir.
func extractRenamed(ctx context.Context, r io.Reader, dir, top, name string) error {
	pr, pw := io.Pipe()
	go func() {
		tr, tw := tar.NewReader(r), tar.NewWriter(pw)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			hdr.Name = rename(hdr.Name, top, name)
			if hdr.Typeflag == tar.TypeLink {
				hdr.Linkname = rename(hdr.Linkname, top, name)
			}
			if err := tw.WriteHeader(hdr); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	_, err := archive.Extract(ctx, dir, pr, archive.Options{Mode: archive.Flatten})
	pr.CloseWithError(err)
	return err
}

func rename(n, top, name string) string {
	if top == "." {
		return path.Join(name, n)
	}
	rest, ok := strings.CutPrefix(strings.TrimSuffix(n, "/"), top)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		return n
	}
	return name + rest
}
