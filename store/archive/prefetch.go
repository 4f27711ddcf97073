package archive

import "io"

// Prefetch reads r in a goroutine, n chunks ahead, so that decompression
// and hashing (in the goroutine) overlap with file creation (in the
// caller). Close stops the goroutine.
func Prefetch(r io.Reader, chunk, n int) io.ReadCloser {
	p := &prefetcher{ch: make(chan []byte, n), free: make(chan []byte, n+2), done: make(chan struct{}), exited: make(chan struct{})}
	for range n + 2 {
		p.free <- make([]byte, chunk)
	}
	go p.fill(r)
	return p
}

type prefetcher struct {
	ch   chan []byte
	free chan []byte
	done chan struct{}
	// exited is closed when fill returns: Close waits for it so that the
	// caller may close r's underlying decoder afterwards.
	exited chan struct{}
	err    error // set before ch is closed
	cur    []byte
	buf    []byte
}

func (p *prefetcher) fill(r io.Reader) {
	defer close(p.exited)
	defer close(p.ch)
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.done:
			return
		}
		n, err := io.ReadFull(r, b[:cap(b)])
		if n > 0 {
			select {
			case p.ch <- b[:n]:
			case <-p.done:
				return
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			p.err = io.EOF
			return
		}
		if err != nil {
			p.err = err
			return
		}
	}
}

func (p *prefetcher) Read(out []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.buf != nil {
			p.free <- p.buf
			p.buf = nil
		}
		b, ok := <-p.ch
		if !ok {
			return 0, p.err
		}
		p.buf, p.cur = b, b
	}
	n := copy(out, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

func (p *prefetcher) Close() error {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.exited
	return nil
}
