package store

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// pullProgress prints one line per layer event and, on a terminal, a
// status line with the bytes transferred that redraws in place.
type pullProgress struct {
	verb  string
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	total atomic.Int64
	done  atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newPullProgress(o RegistryOptions, verb string) *pullProgress {
	p := &pullProgress{verb: verb, w: o.Progress, tty: o.TTY && o.Progress != nil, stop: make(chan struct{})}
	if p.tty {
		p.wg.Add(1)
		go p.redraw()
	}
	return p
}

func (p *pullProgress) redraw() {
	defer p.wg.Done()
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.status()
			p.mu.Unlock()
		}
	}
}

func (p *pullProgress) status() {
	fmt.Fprintf(p.w, "\r\033[K%s %.1f/%.1f MB", p.verb, float64(p.done.Load())/1e6, float64(p.total.Load())/1e6)
}

func (p *pullProgress) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, format+"\n", args...)
	if p.tty {
		p.status()
	}
}

// close stops the redraw; the caller has ended whatever feeds the counts.
func (p *pullProgress) close() {
	close(p.stop)
	p.wg.Wait()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// counter adds what passes through to a progress total.
type counter struct {
	r io.Reader
	n *atomic.Int64
}

func (c counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}
