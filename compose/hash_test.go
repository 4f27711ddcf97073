package compose

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

const hashBase = `
services:
  web:
    image: busybox
    env_file: web.env
    configs: [conf]
    secrets: [tok]
    depends_on: [db]
    pull_policy: missing
    scale: 1
  db:
    image: busybox
configs:
  conf:
    file: ./app.conf
secrets:
  tok:
    file: ./token
`

func hashOfWeb(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{"compose.yaml": hashBase, "web.env": "A=1\n", "app.conf": "v1\n", "token": "secret-1"}
	for k, v := range files {
		all[k] = v
	}
	writeTree(t, dir, all)
	p, err := Load(context.Background(), Options{Dir: dir, Environ: []string{}, ProjectName: "h"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Desired()
	if err != nil {
		t.Fatal(err)
	}
	return d.Services["web"].ConfigHash
}

// TestConfigHashStability: what must not recreate a container does not
// move the hash; what must, does.
func TestConfigHashStability(t *testing.T) {
	base := hashOfWeb(t, nil)
	if len(base) != 64 {
		t.Fatalf("hash %q is not hex sha256", base)
	}
	same := map[string]map[string]string{
		"scale":               {"compose.yaml": strings.Replace(hashBase, "scale: 1", "scale: 4", 1)},
		"deploy.replicas":     {"compose.yaml": strings.Replace(hashBase, "scale: 1", "deploy: {replicas: 3}", 1)},
		"depends_on":          {"compose.yaml": strings.Replace(hashBase, "depends_on: [db]", "depends_on: {db: {condition: service_healthy}}", 1)},
		"pull_policy":         {"compose.yaml": strings.Replace(hashBase, "pull_policy: missing", "pull_policy: always", 1)},
		"build":               {"compose.yaml": strings.Replace(hashBase, "pull_policy: missing", "build: .", 1)},
		"env_file moved":      {"compose.yaml": strings.Replace(hashBase, "env_file: web.env", "env_file: other.env", 1), "other.env": "A=1\n"},
		"unrelated service":   {"compose.yaml": strings.Replace(hashBase, "  db:\n    image: busybox", "  db:\n    image: postgres", 1)},
		"config file touched": {"app.conf": "v1\n"},
	}
	for name, files := range same {
		if got := hashOfWeb(t, files); got != base {
			t.Errorf("%s moved the hash", name)
		}
	}
	moves := map[string]map[string]string{
		"env_file value":   {"web.env": "A=2\n"},
		"config content":   {"app.conf": "v2\n"},
		"secret content":   {"token": "secret-2"},
		"image":            {"compose.yaml": strings.Replace(hashBase, "image: busybox\n    env_file", "image: busybox:1\n    env_file", 1)},
		"environment":      {"compose.yaml": strings.Replace(hashBase, "env_file: web.env", "env_file: web.env\n    environment: [B=1]", 1)},
		"deploy.resources": {"compose.yaml": strings.Replace(hashBase, "scale: 1", "deploy: {resources: {limits: {memory: 64m}}}", 1)},
	}
	for name, files := range moves {
		if got := hashOfWeb(t, files); got == base {
			t.Errorf("%s did not move the hash", name)
		}
	}
}

// TestConfigHashProfiles: enabling a profile does not change the hash of
// a service that was already enabled.
func TestConfigHashProfiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"compose.yaml": "services:\n  a:\n    image: x\n    profiles: [p]\n  b:\n    image: y\n    profiles: [p, q]\n"})
	hash := func(profiles ...string) string {
		p, err := Load(context.Background(), Options{Dir: dir, Environ: []string{}, Profiles: profiles})
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.Desired()
		if err != nil {
			t.Fatal(err)
		}
		return d.Services["b"].ConfigHash
	}
	if hash("p") != hash("q") {
		t.Error("the active profile moved the hash")
	}
}

// TestConfigHashDeterministic: map iteration order never leaks into the hash.
func TestConfigHashDeterministic(t *testing.T) {
	dir, err := filepath.Abs("testdata/golden/services")
	if err != nil {
		t.Fatal(err)
	}
	var first map[string]string
	for i := 0; i < 20; i++ {
		p, err := Load(context.Background(), Options{Dir: dir, Environ: []string{"HOST_VALUE=v"}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.Desired()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for n, s := range d.Services {
			got[n] = s.ConfigHash
		}
		for k, n := range d.Networks {
			got["network "+k] = n.Hash
		}
		if first == nil {
			first = got
			continue
		}
		for k, v := range got {
			if first[k] != v {
				t.Fatalf("%s hash changed between identical loads", k)
			}
		}
	}
}

// FuzzConfigHash: the hash is deterministic, never panics, and ignores
// the replica count, whatever the service holds.
func FuzzConfigHash(f *testing.F) {
	f.Add("busybox", "KEY", "value", 3, "8080:80", "/data")
	f.Add("", "", "", 0, "", "")
	f.Add("nginx@sha256:abc", "A=B", "\x00", -1, "1-2:3-4/udp", "rel")
	f.Fuzz(func(t *testing.T, img, key, val string, replicas int, port, target string) {
		v := val
		s := types.ServiceConfig{Name: "svc"}
		s.Image = img
		s.Environment = types.MappingWithEquals{key: &v}
		s.Ports = []types.ServicePortConfig{{Published: port, Target: 80}}
		s.Volumes = []types.ServiceVolumeConfig{{Type: "volume", Target: target}}
		s.Configs = []types.ServiceConfigObjConfig{{Source: key}}
		p := &types.Project{Name: "p", Configs: types.Configs{key: {Content: val}}}
		s.Scale = &replicas
		h1, err := ConfigHash(p, s)
		if err != nil {
			t.Skip()
		}
		other := replicas + 1
		s.Scale = &other
		s.Deploy = &types.DeployConfig{Replicas: &other}
		h2, err := ConfigHash(p, s)
		if err != nil {
			t.Fatal(err)
		}
		if h1 != h2 {
			t.Fatalf("replicas moved the hash: %s vs %s", h1, h2)
		}
		if s.Deploy.Replicas == nil || *s.Scale != other {
			t.Fatal("ConfigHash modified its argument")
		}
	})
}

// FuzzLoad: any bytes as a compose file load or fail cleanly; a project
// that loads converts without panicking.
func FuzzLoad(f *testing.F) {
	// small seeds: every input the engine finds interesting is minimised,
	// and each execution runs the whole instrumented loader
	for _, seed := range []string{
		"services: {a: {image: x}}",
		"name: n\nservices:\n  a:\n    image: ${X:-y}\n    environment: [A=1]\n",
		"services: {a: {image: x, volumes: ['v:/d', './b:/b:ro'], networks: [n]}}\nvolumes: {v: {}}\nnetworks: {n: {}}",
		"x-a: &a {image: x}\nservices: {a: *a, b: {<<: *a, depends_on: [a]}}",
		"services: {a: {image: x, configs: [c]}}\nconfigs: {c: {content: hi}}",
		"services: {a: {image: x, healthcheck: {test: [CMD, 'true']}, deploy: {replicas: 2}}}",
	} {
		f.Add([]byte(seed))
	}
	f.Add([]byte("services: {a: {image: x, ports: ['1-3:4-6']}}"))
	f.Add([]byte("a: &a [*a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if wideRange(b) {
			// compose-go expands port ranges in quadratic time (a
			// 20000-port range takes seconds); the fuzzer would report
			// the stall as a hung worker
			t.Skip()
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Load(context.Background(), Options{Dir: dir, Environ: []string{}, ProjectName: "fuzz"})
		if err != nil {
			return
		}
		if _, err := p.Desired(); err != nil {
			return
		}
	})
}

var numRange = regexp.MustCompile(`(\d+)\s*-\s*(\d+)`)

func wideRange(b []byte) bool {
	for _, m := range numRange.FindAllSubmatch(b, -1) {
		lo, err1 := strconv.Atoi(string(m[1]))
		hi, err2 := strconv.Atoi(string(m[2]))
		if err1 != nil || err2 != nil || hi-lo > 1000 {
			return true
		}
	}
	return false
}
