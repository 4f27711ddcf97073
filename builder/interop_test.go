package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/store"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s (scripts/install-deps.sh installs it)", name)
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return string(out)
}

// TestBuiltImageInterop saves a built image and has skopeo read it (both
// archive formats) and umoci unpack it.
func TestBuiltImageInterop(t *testing.T) {
	needTool(t, "skopeo")
	needTool(t, "umoci")
	e := newTestEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox:test\nRUN echo hi > /hello\nCOPY data/ /data/\nENV A=1\nHEALTHCHECK CMD true\nCMD [\"sh\"]\n",
		"data/one":   "1", "data/two": "2",
	})
	res, out, err := e.build(dir, Options{Tags: []string{"interop:1"}, BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "0"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tmp := t.TempDir()
	for _, format := range []string{store.FormatDocker, store.FormatOCI} {
		p := filepath.Join(tmp, format+".tar")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.Save(context.Background(), f, format, "interop:1"); err != nil {
			t.Fatal(err)
		}
		f.Close()
		ref := format + ":" + p
		var info struct {
			Env    []string
			Layers []string
		}
		raw := runTool(t, "skopeo", "inspect", ref)
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			t.Fatal(err)
		}
		if !contains(info.Env, "A=1") || len(info.Layers) != len(res.Layers) {
			t.Errorf("%s: skopeo sees env %v, %d layers (want %d)", format, info.Env, len(info.Layers), len(res.Layers))
		}
		cfgRaw := runTool(t, "skopeo", "inspect", "--raw", "--config", ref)
		if !strings.Contains(cfgRaw, "Healthcheck") {
			t.Errorf("%s: config lost the healthcheck: %s", format, cfgRaw)
		}
	}
	// umoci unpacks the OCI layout inside the oci-archive
	layout := filepath.Join(tmp, "layout")
	runTool(t, "skopeo", "--insecure-policy", "copy", "oci-archive:"+filepath.Join(tmp, store.FormatOCI+".tar"), "oci:"+layout+":interop")
	bundle := filepath.Join(tmp, "bundle")
	runTool(t, "umoci", "unpack", "--image", layout+":interop", bundle)
	for name, want := range map[string]string{"hello": "hi\n", "data/two": "2"} {
		got, err := os.ReadFile(filepath.Join(bundle, "rootfs", name))
		if err != nil || string(got) != want {
			t.Errorf("umoci rootfs %s = %q, %v", name, got, err)
		}
	}
}
