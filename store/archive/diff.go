package archive

import (
	"archive/tar"
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WriteOptions tune WriteDir.
type WriteOptions struct {
	// Whiteouts reads dir as an overlayfs upper directory: 0/0 character
	// devices and opaque directories become OCI whiteouts.
	Whiteouts bool
}

// WriteDir writes the tree under dir to w as a tar stream (PAX, sorted,
// hard links preserved, xattrs kept except overlayfs' own). The same tree
// always yields the same bytes.
func WriteDir(ctx context.Context, w io.Writer, dir string, o WriteOptions) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		return writeEntry(tw, p, rel, &st, o, links, buf)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, p, rel string, st *unix.Stat_t, o WriteOptions, links map[[2]uint64]string, buf []byte) error {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[key] = rel
			}
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		if o.Whiteouts && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			dir, base := path.Split(rel)
			return tw.WriteHeader(&tar.Header{Name: dir + WhiteoutPrefix + base, Typeflag: tar.TypeReg,
				ModTime: hdr.ModTime, Format: tar.FormatPAX})
		}
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets do not travel in layers
	}
	opaque, err := xattrs(p, hdr)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		_, err = io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
		f.Close()
		if err != nil {
			return err
		}
	}
	if o.Whiteouts && opaque && hdr.Typeflag == tar.TypeDir {
		return tw.WriteHeader(&tar.Header{Name: rel + "/" + OpaqueWhiteout, Typeflag: tar.TypeReg,
			ModTime: hdr.ModTime, Format: tar.FormatPAX})
	}
	return nil
}

// xattrs copies p's extended attributes into hdr and reports whether p is
// an overlayfs opaque directory.
func xattrs(p string, hdr *tar.Header) (opaque bool, err error) {
	if hdr.Typeflag == tar.TypeSymlink {
		return false, nil
	}
	names, err := listXattrs(p)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		v, err := getXattr(p, n)
		if err != nil {
			return false, err
		}
		if n == OpaqueXattr {
			opaque = string(v) == "y"
		}
		if skipXattr(n) {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+n] = string(v)
	}
	return opaque, nil
}

func listXattrs(p string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(p, buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err == unix.ENOTSUP {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + name, Path: p, Err: err}
		}
		return buf[:n], nil
	}
}
