package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// startFirstHealthy ends a web service's definition: start-first updates,
// gated by an HTTP healthcheck.
const startFirstHealthy = `
      update_config:
        order: start-first
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1"]
      interval: 500ms
      timeout: 2s
      retries: 3
`

const startFirst = `
name: rollout
services:
  web:
    image: localhost/busybox:test
    command: ["sh", "-c", "echo $$VERSION > /www/index.html; exec httpd -f -p 8080 -h /www"]
    init: true
    environment:
      VERSION: v1
    ports: ["127.0.0.1:18091:8080"]
    deploy:
      replicas: 2` + startFirstHealthy

// client sends requests to url in a tight loop until ctx ends (bounded by
// time and by count) and counts answers by body and failures.
type client struct {
	mu       sync.Mutex
	bodies   map[string]int
	failures []string
}

func (c *client) run(ctx context.Context, url string) {
	hc := http.Client{Timeout: 2 * time.Second}
	for i := 0; i < 20000 && ctx.Err() == nil; i++ {
		resp, err := hc.Get(url)
		c.mu.Lock()
		if err != nil {
			c.failures = append(c.failures, err.Error())
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.bodies[strings.TrimSpace(string(b))]++
		}
		c.mu.Unlock()
	}
}

func (c *client) snapshot() (map[string]int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := map[string]int{}
	for k, v := range c.bodies {
		b[k] = v
	}
	return b, append([]string(nil), c.failures...)
}

// TestStartFirstUpdateDropsNoRequest updates a service of two healthy
// replicas behind a published port while a client hammers it: not one
// request may fail. Then an update whose replicas never turn healthy must
// fail and leave the old replicas serving, again without a failed request.
func TestStartFirstUpdateDropsNoRequest(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(startFirst)
	m.must("up", "-d", "--wait")
	url := "http://127.0.0.1:18091/"
	if got := httpGet(t, url); got != "v1\n" {
		t.Fatalf("before the update: %q", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	c := &client{bodies: map[string]int{}}
	done := make(chan struct{})
	go func() { c.run(ctx, url); close(done) }()
	time.Sleep(300 * time.Millisecond)
	m.writeCompose(strings.Replace(startFirst, "VERSION: v1", "VERSION: v2", 1))
	m.must("up", "-d")
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	bodies, failures := c.snapshot()
	if len(failures) > 0 {
		t.Errorf("%d requests failed during a start-first update, first: %s", len(failures), failures[0])
	}
	if bodies["v1"] == 0 || bodies["v2"] == 0 {
		t.Errorf("answers during the update: %v (want both versions)", bodies)
	}
	if got := httpGet(t, url); got != "v2\n" {
		t.Errorf("after the update: %q", got)
	}

	// A successor that never turns healthy: the update fails, the old
	// replicas keep serving.
	broken := strings.Replace(startFirst, "VERSION: v1", "VERSION: v3", 1)
	broken = strings.Replace(broken, "http://127.0.0.1:8080/ || exit 1", "http://127.0.0.1:9/ || exit 1", 1)
	m.writeCompose(broken)
	ctx, cancel = context.WithCancel(context.Background())
	c = &client{bodies: map[string]int{}}
	done = make(chan struct{})
	go func() { c.run(ctx, url); close(done) }()
	if r := m.berth("up", "-d"); r.code == 0 {
		t.Errorf("an update whose replicas never turn healthy succeeded:\n%s%s", r.stdout, r.stderr)
	}
	cancel()
	<-done
	bodies, failures = c.snapshot()
	if len(failures) > 0 || bodies["v3"] > 0 || bodies["v2"] == 0 {
		t.Errorf("during a failing update: answers %v, %d failures %v", bodies, len(failures), failures)
	}
}

const slowService = `
name: slowdrain
services:
  web:
    image: localhost/busybox:test
    command: ["sh", "-c", "mkdir -p /www/cgi-bin && echo \"$$SLOW\" > /www/cgi-bin/slow && chmod +x /www/cgi-bin/slow && echo $$VERSION > /www/index.html && exec httpd -f -p 8080 -h /www"]
    init: true
    environment:
      VERSION: v1
      SLOW: |
        #!/bin/sh
        sleep 2
        echo Content-Type: text/plain
        echo
        echo $$VERSION
    ports: ["127.0.0.1:18092:8080"]
    deploy:` + startFirstHealthy

// TestStartFirstUpdateFinishesOpenRequests: a request the old container
// accepted before a start-first update took it out of the balancing (here
// one that takes 2 s) is answered; the old one is stopped only once its
// connections are done, not in the middle of them.
func TestStartFirstUpdateFinishesOpenRequests(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(slowService)
	m.must("up", "-d", "--wait")
	type answer struct {
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		hc := http.Client{Timeout: 15 * time.Second}
		resp, err := hc.Get("http://127.0.0.1:18092/cgi-bin/slow")
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{strings.TrimSpace(string(b)), err}
	}()
	time.Sleep(200 * time.Millisecond) // the request is in the old container
	m.writeCompose(strings.Replace(slowService, "VERSION: v1", "VERSION: v2", 1))
	start := time.Now()
	m.must("up", "-d")
	a := <-got
	if a.err != nil || a.body != "v1" {
		t.Errorf("the request open during the update: %q, %v (want v1)", a.body, a.err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the update took %v", d)
	}
	if body := httpGet(t, "http://127.0.0.1:18092/"); body != "v2\n" {
		t.Errorf("after the update: %q", body)
	}
}
