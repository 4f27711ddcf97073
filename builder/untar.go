package builder

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/berth-dev/berth/store/archive"
	"golang.org/x/sys/unix"
)

// extractArchive unpacks rel into the destination directory when it is a
// (possibly compressed) tar, as ADD does for local files. It reports false,
// writing nothing, for anything else. Extraction goes through the store's
// extractor, which refuses entries that climb out of the destination.
func extractArchive(ctx context.Context, fs *srcFS, root *rootDir, rel, dest, workdir string) (bool, error) {
	f, err := fs.open(rel, unix.O_RDONLY, true)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, ok, err := tarReader(f)
	if err != nil || !ok {
		return false, err
	}
	defer r.Close()
	dst, _ := destination(dest, workdir)
	d, err := root.mkdirAll(dst, copyOptions{uid: -1, gid: -1})
	if err != nil {
		return false, err
	}
	defer d.Close()
	target := "/proc/self/fd/" + strconv.Itoa(int(d.Fd()))
	if _, err := archive.Extract(ctx, target, r, archive.Options{Mode: archive.Flatten}); err != nil {
		return false, fmt.Errorf("extract %s: %w", rel, err)
	}
	return true, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// tarReader sniffs compression and checks that the plain stream starts
// with a tar header.
func tarReader(f io.Reader) (io.ReadCloser, bool, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(3)
	var plain io.ReadCloser
	if bytes.Equal(head, []byte("BZh")) {
		plain = io.NopCloser(bzip2.NewReader(br))
	} else {
		dr, _, err := archive.Decompress(br)
		if err != nil {
			return nil, false, nil // looks compressed but is not: copy as a file
		}
		plain = dr
	}
	pb := bufio.NewReaderSize(plain, 64<<10)
	block, err := pb.Peek(512)
	if err != nil || !isTarHeader(block) {
		plain.Close()
		return nil, false, nil
	}
	return readCloser{Reader: pb, close: plain.Close}, true, nil
}

func isTarHeader(block []byte) bool {
	if len(block) < 512 {
		return false
	}
	_, err := tar.NewReader(bytes.NewReader(block)).Next()
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false
	}
	return err != io.EOF // an all-zero block is not an archive
}
