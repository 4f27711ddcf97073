package archive

import (
	"bufio"
	"bytes"
	"github.com/klauspost/compress/gzip"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Compression is how a layer blob is compressed.
type Compression int

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Decompress sniffs the stream's compression and returns a reader of the
// plain tar. Close releases decoder resources; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, Gzip, err
		}
		return zr, Gzip, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, Zstd, err
		}
		return zstdCloser{zr}, Zstd, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}

type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error { z.Decoder.Close(); return nil }
