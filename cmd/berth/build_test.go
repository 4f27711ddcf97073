package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildExample builds examples/build as its README says, twice: the
// second run is fully cached and yields the same image.
func TestBuildExample(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts and namespaces")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static (scripts/install-deps.sh installs it)")
	}
	root, runRoot := t.TempDir(), t.TempDir()
	dir, _ := filepath.Abs("../../examples/build")
	args := []string{"--root", root, "--run-root", runRoot, "build"}
	pruneAfter(t, dir, args)
	first := run(t, dir, "", args...)
	if first.code != 0 {
		t.Fatalf("berth build: %d\n%s", first.code, first.stderr)
	}
	for _, want := range []string{"[base 2/4] COPY --from=hostbin busybox /bin/busybox", "naming to localhost/berth-build-example:latest"} {
		if !strings.Contains(first.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, first.stderr)
		}
	}
	q1 := run(t, dir, "", append(args, "-q")...)
	q2 := run(t, dir, "", append(args, "-q", "web")...)
	if q1.code != 0 || q2.code != 0 || !strings.HasPrefix(q1.stdout, "sha256:") || q1.stdout != q2.stdout {
		t.Errorf("cached rebuilds: %q (%d) vs %q (%d)\n%s%s", q1.stdout, q1.code, q2.stdout, q2.code, q1.stderr, q2.stderr)
	}
	bad := run(t, dir, "", append(args, "nosuch")...)
	if bad.code == 0 || !strings.Contains(bad.stderr, "no such service") {
		t.Errorf("unknown service: %d %s", bad.code, bad.stderr)
	}
}

// TestBuildServicesInParallel builds two services; their output lines are
// marked with the service and -q prints one ID per service.
func TestBuildServicesInParallel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts and namespaces")
	}
	dir := t.TempDir()
	files := map[string]string{
		"docker-compose.yml": "services:\n" +
			"  a:\n    build:\n      context: a\n      additional_contexts: {hostbin: /bin}\n" +
			"  b:\n    build:\n      context: b\n      additional_contexts: {hostbin: /bin}\n      args: {X: bee}\n" +
			"  c:\n    image: busybox\n",
		"a/Dockerfile": "FROM scratch\nCOPY --from=hostbin busybox /bin/busybox\nRUN [\"/bin/busybox\", \"true\"]\n",
		"b/Dockerfile": "FROM scratch\nARG X\nCOPY --from=hostbin busybox /bin/busybox\nLABEL x=$X\n",
	}
	for name, content := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--root", t.TempDir(), "--run-root", t.TempDir(), "build"}
	pruneAfter(t, dir, args)
	r := run(t, dir, "", args...)
	if r.code != 0 {
		t.Fatalf("%d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"[a] #", "[b] #"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stderr)
		}
	}
	q := run(t, dir, "", append(args, "-q")...)
	if ids := strings.Fields(q.stdout); q.code != 0 || len(ids) != 2 || ids[0] == ids[1] {
		t.Errorf("-q: %q\n%s", q.stdout, q.stderr)
	}
}

// TestBuildServiceContextAndSecrets: `berth build d` builds the image of
// service a first, because d's additional_contexts name it as service:a;
// d's RUN reads the compose build secret, and --secret overrides it.
func TestBuildServiceContextAndSecrets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts and namespaces")
	}
	dir := t.TempDir()
	check := `["/bin/busybox", "sh", "-c", "[ \"$(/bin/busybox cat /run/secrets/tok)\" = \"$WANT\" ]"]`
	files := map[string]string{
		"docker-compose.yml": "services:\n" +
			"  a:\n    build:\n      context: a\n      additional_contexts: {hostbin: /bin}\n" +
			"  d:\n    build:\n      context: d\n      additional_contexts: {base: \"service:a\"}\n      secrets: [tok]\n      args: {WANT: from-compose}\n" +
			"secrets:\n  tok:\n    file: ./tok.txt\n",
		"tok.txt":      "from-compose",
		"cli.txt":      "from-cli",
		"a/Dockerfile": "FROM scratch\nCOPY --from=hostbin busybox /bin/busybox\n",
		"d/Dockerfile": "FROM scratch\nARG WANT\nCOPY --from=base /bin/busybox /bin/busybox\nRUN --mount=type=secret,id=tok,required " + check + "\n",
	}
	for name, content := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--root", t.TempDir(), "--run-root", t.TempDir(), "build"}
	pruneAfter(t, dir, args)
	r := run(t, dir, "", append(args, "d")...)
	if r.code != 0 {
		t.Fatalf("%d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"COPY --from=hostbin busybox /bin/busybox", "COPY --from=base /bin/busybox"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stderr)
		}
	}
	r = run(t, dir, "", append(args, "--no-cache", "--secret", "id=tok,src="+filepath.Join(dir, "cli.txt"), "--build-arg", "WANT=from-cli", "d")...)
	if r.code != 0 {
		t.Fatalf("--secret: %d\n%s", r.code, r.stderr)
	}
	r = run(t, dir, "", append(args, "--no-cache", "--build-arg", "WANT=other", "d")...)
	if r.code == 0 {
		t.Errorf("a RUN checking for another secret value passed:\n%s", r.stderr)
	}
}

// pruneAfter removes, once the test is done, the build bridge that RUN
// steps leave for the next build (these builds run on the host's network).
func pruneAfter(t *testing.T, dir string, buildArgs []string) {
	args := append(append([]string(nil), buildArgs[:len(buildArgs)-1]...), "builder", "prune", "--all")
	t.Cleanup(func() {
		if r := run(t, dir, "", args...); r.code != 0 {
			t.Errorf("builder prune --all: %d\n%s", r.code, r.stderr)
		}
	})
}
