package main

import (
	"strings"
	"testing"
	"time"
)

const healthRestart = `
name: healthy
x-flaky: &flaky
  image: localhost/busybox:test
  init: true
  # Healthy for a moment, then the probe file goes: unhealthy for good.
  command: ["sh", "-c", "echo boot; touch /tmp/ok; sleep 2; rm /tmp/ok; exec sleep 3600"]
  healthcheck:
    test: ["CMD", "cat", "/tmp/ok"]
    interval: 300ms
    timeout: 1s
    retries: 2
services:
  restarted:
    <<: *flaky
    restart: always
  kept:
    <<: *flaky
    restart: "no"
  optout:
    <<: *flaky
    restart: always
    x-berth:
      restart-on-unhealthy: false
`

// TestUnhealthyIsRestarted: a container whose healthcheck turns unhealthy
// is restarted when its restart policy is not "no" (and it did not opt
// out); the others keep running unhealthy.
func TestUnhealthyIsRestarted(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(healthRestart)
	m.must("up", "-d")
	boots := func(service string) int {
		return strings.Count(m.must("logs", "--no-log-prefix", service), "boot")
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && boots("restarted") < 2 {
		time.Sleep(300 * time.Millisecond)
	}
	if n := boots("restarted"); n < 2 {
		t.Errorf("restart: always container booted %d times, want a restart after turning unhealthy", n)
	}
	for _, s := range []string{"kept", "optout"} {
		if n := boots(s); n != 1 {
			t.Errorf("%s booted %d times, want 1 (no restart)", s, n)
		}
		if out := m.must("ps", "--format", "json", s); !strings.Contains(out, `"Health":"unhealthy"`) {
			t.Errorf("%s should be running unhealthy: %s", s, out)
		}
	}
}
