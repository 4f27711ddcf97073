package builder

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
)

// startRegistry runs Debian's docker-registry on a free loopback port.
func startRegistry(t *testing.T) string {
	t.Helper()
	needTool(t, "docker-registry")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644)
	cmd := exec.Command("docker-registry", "serve", cfg)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 100 {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("registry did not start: %s", logs.String())
	return ""
}

// TestBuildPullsMissingBase builds FROM an image only a (loopback)
// registry has: the builder pulls it, and the build works offline after.
func TestBuildPullsMissingBase(t *testing.T) {
	e := newTestEnv(t)
	addr := startRegistry(t)
	ctx := context.Background()
	ref := addr + "/bb:1"
	if err := e.store.Push(ctx, "busybox:test", ref, store.RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Resolve(ref); err == nil {
		t.Fatal("pushing tagged the image locally; the test needs it missing")
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + ref + "\nRUN echo pulled > /p\n"})
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if e.readImageFile(res, "p") != "pulled\n" {
		t.Error("RUN on the pulled base")
	}
	if _, err := e.store.Resolve(ref); err != nil {
		t.Errorf("base not in the store after the build: %v", err)
	}
	res2, out, err := e.build(dir, Options{Pull: true})
	if err != nil || res2.ID != res.ID {
		t.Errorf("--pull of an unchanged base: %v, %s vs %s\n%s", err, res2.ID, res.ID, out)
	}
}
