package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LayerWriter is a Store that takes a layer as a tar stream. With it, COPY
// writes its layer straight from the sources: no file is created in (and
// then read back from and deleted with) the step's overlay, which on
// ext4 costs far more than the copy itself.
type LayerWriter interface {
	WriteLayer(ctx context.Context, write func(io.Writer) error) (*Layer, error)
}

// errIndirect says that a copy needs the rootfs path (a symlink on the
// way to the destination in the image, an archive to extract).
var errIndirect = errors.New("copy needs the rootfs")

// tarEntry is one object of a COPY layer: its header, and for regular
// files the source entry whose content follows it.
type tarEntry struct {
	hdr *tar.Header
	src *entry
}

// copyPlan is the layer of a COPY, built as copyMatches would write it
// into the rootfs: the same destinations, parents, owners and modes.
type copyPlan struct {
	root    *rootDir
	o       copyOptions
	order   []string // image paths, parents first
	entries map[string]*tarEntry
	created map[string]bool // directories the layer creates (nothing below them exists)
	now     time.Time
}

// planCopy lays out the objects copyMatches would write. The image is only
// read: whether the destination and its parents exist, and with what
// metadata (an existing parent goes in the layer as it is, as an overlay
// copy-up would put it there).
func planCopy(root *rootDir, ms []match, dest, workdir string, o copyOptions) (*copyPlan, error) {
	p := &copyPlan{root: root, o: o, entries: map[string]*tarEntry{}, created: map[string]bool{}, now: time.Now()}
	err := placeMatches(root, ms, dest, workdir,
		func(m *match, target string) error {
			if err := p.dir(target); err != nil {
				return err
			}
			for i := range m.entries {
				if err := p.add(&m.entries[i], path.Join(target, m.entries[i].dst)); err != nil {
					return err
				}
			}
			return nil
		},
		func(m *match, name string) error {
			if err := p.dir(path.Dir(name)); err != nil {
				return err
			}
			return p.add(&m.entries[0], name)
		})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// lstat looks at an image path whose parents are known to be directories.
func (p *copyPlan) lstat(name string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(int(p.root.f.Fd()), strings.TrimPrefix(name, "/"), &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// exists says what the image has at name (nil: nothing), unless a parent
// is created by the layer.
func (p *copyPlan) exists(name string) (*unix.Stat_t, error) {
	if p.created[path.Dir(name)] {
		return nil, nil
	}
	return p.lstat(name)
}

// dir makes sure the directory dir and its parents are in the layer: new
// ones 0755 owned by the copy's owner (as mkdirAll creates them), existing
// ones as they are. A symlink on the way needs the rootfs path.
func (p *copyPlan) dir(dir string) error {
	if dir == "/" || dir == "." {
		return nil
	}
	if _, ok := p.entries[dir]; ok {
		return nil
	}
	if err := p.dir(path.Dir(dir)); err != nil {
		return err
	}
	st, err := p.exists(dir)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, ModTime: p.now, Format: tar.FormatPAX}
	switch {
	case st == nil:
		if p.o.uid >= 0 {
			hdr.Uid, hdr.Gid = p.o.uid, p.o.gid
		}
		p.created[dir] = true
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return errIndirect
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("create %s: not a directory", dir)
	default:
		hdr.Mode, hdr.Uid, hdr.Gid = int64(st.Mode&0o7777), int(st.Uid), int(st.Gid)
		hdr.ModTime = time.Unix(st.Mtim.Unix())
	}
	p.put(dir, &tarEntry{hdr: hdr})
	return nil
}

// add puts one copied object at name, with writeEntry's owner and mode.
func (p *copyPlan) add(e *entry, name string) error {
	base := path.Base(name)
	if base == "/" || base == "." || base == ".." {
		return fmt.Errorf("invalid destination %q", name)
	}
	if !e.isDir() && !e.isReg() && !e.isLink() {
		return nil // devices, fifos and sockets are not copied
	}
	if prev, ok := p.entries[name]; ok && prev.hdr.Typeflag == tar.TypeDir && !e.isDir() {
		return fmt.Errorf("%s: cannot replace a directory with a file", name)
	} else if !ok {
		st, err := p.exists(name)
		if err != nil {
			return err
		}
		if st != nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && !e.isDir() {
			return fmt.Errorf("%s: cannot replace a directory with a file", name)
		}
		if e.isDir() && st == nil {
			p.created[name] = true
		}
	}
	uid, gid := 0, 0
	if p.o.keepOwner {
		uid, gid = int(e.st.Uid), int(e.st.Gid)
	}
	if p.o.uid >= 0 {
		uid, gid = p.o.uid, p.o.gid
	}
	perm := uint32(e.st.Mode & 0o7777)
	if p.o.chmod != nil && !e.isLink() {
		perm = p.o.chmod(perm, e.isDir())
	}
	hdr := &tar.Header{Name: strings.TrimPrefix(name, "/"), Mode: int64(perm), Uid: uid, Gid: gid,
		ModTime: time.Unix(e.st.Mtim.Unix()), Format: tar.FormatPAX}
	te := &tarEntry{hdr: hdr}
	switch {
	case e.isDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
	case e.isLink():
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.link, 0o777
	default:
		hdr.Typeflag, hdr.Size, te.src = tar.TypeReg, e.st.Size, e
	}
	p.put(name, te)
	return nil
}

func (p *copyPlan) put(name string, te *tarEntry) {
	if _, ok := p.entries[name]; !ok {
		p.order = append(p.order, name)
	}
	p.entries[name] = te
}

// write streams the layer: headers in order, file contents read from the
// source as they go. A file whose size changed since it was selected fails
// the copy rather than writing a corrupt tar.
func (p *copyPlan) write(ctx context.Context, fs *srcFS, w io.Writer) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 256<<10)
	for _, name := range p.order {
		if err := ctx.Err(); err != nil {
			return err
		}
		te := p.entries[name]
		if err := tw.WriteHeader(te.hdr); err != nil {
			return err
		}
		if te.src == nil || te.hdr.Size == 0 {
			continue
		}
		f, err := fs.open(te.src.rel, unix.O_RDONLY, true)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(tw, io.LimitReader(onlyReader{f}, te.hdr.Size), buf)
		f.Close()
		if err == nil && n != te.hdr.Size {
			err = fmt.Errorf("%s changed while it was copied", te.src.rel)
		}
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

type onlyReader struct{ io.Reader }
