package network

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/state"
)

// TestStartFirstReplacement: while a client keeps connecting to a published
// port, a new replica is attached and the old one detached and removed; no
// connection fails, because each table change is one transaction.
func TestStartFirstReplacement(t *testing.T) {
	e := newTestEnv(t, "replace", "")
	ctx := context.Background()
	if _, err := e.m.EnsureNetwork(ctx, netSpec("p_default", "")); err != nil {
		t.Fatal(err)
	}
	ep := func(id string) Endpoint {
		return Endpoint{ID: id, Name: "p-web-" + id, Project: "p", Service: "web",
			Networks: []state.NetworkAttachment{{Network: "p_default"}},
			Ports:    []state.Port{{HostIP: "127.0.0.1", HostPort: 7070, ContainerPort: 80}}}
	}
	start := func(id string) {
		path, err := e.m.Sandbox(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		serveHTTP(t, path, id)
		// Listening before it is published (a readiness check's job).
		waitFor(t, id+" listening", func() error {
			return inSandbox(t, path, func() error {
				c, err := net.Dial("tcp", "127.0.0.1:80")
				if err == nil {
					c.Close()
				}
				return err
			})
		})
		if _, err := e.m.Attach(ctx, ep(id)); err != nil {
			t.Fatal(err)
		}
	}
	start("old")
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := inSandbox(t, e.host.path, func() (err error) { c, err = net.DialTimeout(network, addr, time.Second); return err })
			return c, err
		}}}
	get := func() (string, error) {
		resp, err := client.Get("http://127.0.0.1:7070/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), err
	}
	waitFor(t, "old serving", func() error { _, err := get(); return err })

	stop := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]int{}
	var failures []error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			body, err := get()
			mu.Lock()
			if err != nil {
				failures = append(failures, err)
			} else {
				seen[body]++
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	start("new")
	time.Sleep(100 * time.Millisecond)
	// The driver's order for a start-first update: unpublish, then stop.
	if err := e.m.Detach(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveSandbox(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d connections failed during the replacement, first: %v", len(failures), failures[0])
	}
	if seen["old"] == 0 || seen["new"] == 0 {
		t.Errorf("answers %v: want both the old and the new replica", seen)
	}
	if body, err := get(); err != nil || body != "new" {
		t.Errorf("after replacement: %q %v", body, err)
	}
}
