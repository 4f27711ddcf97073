package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCp copies both ways and checks that symlinks inside the container
// never lead a copy out of it.
func TestCp(t *testing.T) {
	m := newMachine(t)
	m.writeCompose(`
name: cptest
services:
  box:
    image: localhost/busybox:test
    init: true
    command: ["sh", "-c", "mkdir -p /data/sub && echo inside > /data/sub/f && ln -s /etc /data/etc-link && ln -s / /data/root-link && exec sleep 3600"]
`)
	m.must("up", "-d")
	host := t.TempDir()
	waitFor(t, func() bool { return m.berth("cp", "box:/data/sub/f", filepath.Join(host, "f")).code == 0 })
	if b, _ := os.ReadFile(filepath.Join(host, "f")); string(b) != "inside\n" {
		t.Fatalf("container→host file: %q", b)
	}
	// A directory into an existing directory lands under its base name.
	m.must("cp", "box:/data/sub", host)
	if b, _ := os.ReadFile(filepath.Join(host, "sub", "f")); string(b) != "inside\n" {
		t.Fatalf("container→host dir: %q", b)
	}
	// Through a symlink in the container: its /etc, never the host's.
	m.must("cp", "box:/data/etc-link/passwd", filepath.Join(host, "passwd"))
	if b, _ := os.ReadFile(filepath.Join(host, "passwd")); string(b) != "root:x:0:0:root:/:/bin/sh\n" {
		t.Fatalf("container passwd through a link: %q", b)
	}

	// Host→container, also through a link pointing at /: stays inside.
	src := filepath.Join(host, "up")
	os.MkdirAll(filepath.Join(src, "deep"), 0o755)
	os.WriteFile(filepath.Join(src, "deep", "g"), []byte("from host\n"), 0o600)
	m.must("cp", src, "box:/data/root-link/tmp/")
	out := m.must("exec", "-T", "box", "cat", "/tmp/up/deep/g")
	if out != "from host\n" {
		t.Fatalf("host→container: %q", out)
	}
	if _, err := os.Stat("/tmp/up/deep/g"); err == nil {
		t.Fatal("a copy into the container wrote the host's /tmp")
	}
	// -a keeps owners; without it they are root's.
	os.Chown(filepath.Join(src, "deep", "g"), 1234, 1234)
	m.must("cp", "-a", src+"/.", "box:/kept")
	m.must("cp", src+"/.", "box:/plain")
	if o := m.must("exec", "-T", "box", "stat", "-c", "%u", "/kept/deep/g"); strings.TrimSpace(o) != "1234" {
		t.Errorf("-a lost the owner: %q", o)
	}
	if o := m.must("exec", "-T", "box", "stat", "-c", "%u", "/plain/deep/g"); strings.TrimSpace(o) != "0" {
		t.Errorf("without -a the owner is kept: %q", o)
	}
	if r := m.berth("cp", "box:/nonexistent", host); r.code == 0 {
		t.Error("copying a missing path succeeded")
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for i := 0; i < 50; i++ {
		if ok() {
			return
		}
		sleepBrief()
	}
	t.Fatal("condition not reached")
}

func sleepBrief() { time.Sleep(100 * time.Millisecond) }
