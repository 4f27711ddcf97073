package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"

	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
	"github.com/vishvananda/netlink"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/store"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testEnv is a store with a busybox base image and a builder over it.
type testEnv struct {
	t     *testing.T
	root  string
	store *store.Store
	b     *Builder
	ls    *LayerStore
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts and namespaces")
	}
}

// busyboxRootfs writes a minimal image tree: busybox, its applets, a user
// "app" (1000) and a world-writable /tmp.
func busyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc", "tmp", "root", "home/app"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	must(os.Chown(filepath.Join(dir, "home/app"), 1000, 1000))
	data, err := os.ReadFile("/bin/busybox")
	must(err)
	must(os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755))
	for _, a := range []string{"sh", "echo", "cat", "id", "ls", "pwd", "mkdir", "touch", "false", "true", "test", "env", "sleep", "wc", "printf", "stat", "tar", "readlink", "seq", "rm", "hostname"} {
		must(os.Symlink("busybox", filepath.Join(dir, "bin", a)))
	}
	must(os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app\n"), 0o644))
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	needRoot(t)
	root := t.TempDir()
	s, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(root, "base")
	busyboxRootfs(t, base)
	if _, err := s.ImportRootfs(context.Background(), base, "busybox:test", ocispec.ImageConfig{Cmd: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	ls := &LayerStore{S: s}
	b, err := New(filepath.Join(root, "builder"), ls, NamespaceRunner{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { assertNoResidue(t, s) })
	return &testEnv{t: t, root: root, store: s, b: b, ls: ls}
}

// assertNoResidue checks that no snapshot or mount of the build is left.
func assertNoResidue(t *testing.T, s *store.Store) {
	t.Helper()
	snaps, err := s.Snapshots()
	if err != nil {
		t.Error(err)
	}
	if len(snaps) != 0 {
		t.Errorf("%d snapshots left behind", len(snaps))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), s.Root()) {
		t.Errorf("mounts left behind under %s", s.Root())
	}
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *testEnv) build(ctxDir string, o Options) (*Result, string, error) {
	var out bytes.Buffer
	o.ContextDir = ctxDir
	o.Progress = &out
	res, err := e.b.Build(context.Background(), o)
	return res, out.String(), err
}

// readImageFile reads a file from a built image's filesystem.
func (e *testEnv) readImageFile(res *Result, name string) string {
	e.t.Helper()
	rf, err := e.ls.Prepare(context.Background(), res.Layers)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rf.Release(context.Background())
	data, err := os.ReadFile(filepath.Join(rf.Path(), name))
	if err != nil {
		e.t.Fatalf("image file %s: %v", name, err)
	}
	return string(data)
}

func imageConfig(t *testing.T, res *Result) *Image {
	t.Helper()
	img, err := parseImage(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

const multiStage = `# syntax=docker/dockerfile:1
ARG BASE=busybox:test
FROM ${BASE} AS build
ARG MSG=default
WORKDIR /src
COPY hello.txt .
RUN echo "$MSG" > msg && cat hello.txt >> msg

FROM busybox:test AS unused
RUN false

FROM busybox:test
USER app
WORKDIR /home/app/work
COPY --from=build /src/msg /msg
RUN id -u > /tmp/uid && pwd > /tmp/pwd
ENV A=1
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
`

func TestBuildMultiStage(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": multiStage, "hello.txt": "hello\n"})
	res, out, err := e.build(dir, Options{BuildArgs: map[string]string{"MSG": "override", "SOURCE_DATE_EPOCH": "1700000000"}, Tags: []string{"app:test"}})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if got := e.readImageFile(res, "msg"); got != "override\nhello\n" {
		t.Errorf("/msg = %q", got)
	}
	if got := e.readImageFile(res, "tmp/uid"); got != "1000\n" {
		t.Errorf("RUN as USER app: uid %q", got)
	}
	if got := e.readImageFile(res, "tmp/pwd"); got != "/home/app/work\n" {
		t.Errorf("RUN in WORKDIR: pwd %q", got)
	}
	if strings.Contains(out, "RUN false") {
		t.Errorf("stage not needed by the target was built:\n%s", out)
	}
	img := imageConfig(t, res)
	if img.Config.User != "app" || img.Config.WorkingDir != "/home/app/work" {
		t.Errorf("user %q workdir %q", img.Config.User, img.Config.WorkingDir)
	}
	if !contains(img.Config.Env, "A=1") || img.Config.Healthcheck == nil || img.Config.Healthcheck.Test[0] != "CMD-SHELL" {
		t.Errorf("env %v healthcheck %+v", img.Config.Env, img.Config.Healthcheck)
	}
	if strings.Join(img.Config.Entrypoint, " ") != "/bin/sh -c" || strings.Join(img.Config.Cmd, " ") != "echo hi" {
		t.Errorf("entrypoint %v cmd %v", img.Config.Entrypoint, img.Config.Cmd)
	}
	if len(img.RootFS.DiffIDs) != len(res.Layers) || len(img.History) == 0 || img.Created.Unix() != 1700000000 {
		t.Errorf("diff ids %d layers %d history %d created %v", len(img.RootFS.DiffIDs), len(res.Layers), len(img.History), img.Created)
	}
	stored, err := e.store.Resolve("app:test")
	if err != nil || stored.ConfigDigest != res.ID {
		t.Fatalf("tag app:test: %v (%v vs %v)", err, stored, res.ID)
	}
	var raw map[string]any
	cfg, _ := e.store.ReadBlob(res.ID)
	json.Unmarshal(cfg, &raw)
	if raw["config"].(map[string]any)["Healthcheck"] == nil {
		t.Errorf("stored config lost the Healthcheck: %s", cfg)
	}

	// a second build is fully cached and reproducible
	res2, out2, err := e.build(dir, Options{BuildArgs: map[string]string{"MSG": "override", "SOURCE_DATE_EPOCH": "1700000000"}, Tags: []string{"app:test"}})
	if err != nil {
		t.Fatal(err)
	}
	if res2.ID != res.ID || strings.Count(out2, "CACHED") < 5 {
		t.Errorf("rebuild: id %s vs %s\n%s", res2.ID, res.ID, out2)
	}
	// a changed copied file rebuilds that COPY and what follows, not before
	writeFiles(t, dir, map[string]string{"hello.txt": "changed\n"})
	res3, out3, err := e.build(dir, Options{BuildArgs: map[string]string{"MSG": "override"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.readImageFile(res3, "msg"); got != "override\nchanged\n" {
		t.Errorf("after change /msg = %q\n%s", got, out3)
	}
	if !strings.Contains(stepLine(out3, "WORKDIR /src"), "CACHED") || strings.Contains(stepLine(out3, "COPY hello.txt"), "CACHED") {
		t.Errorf("cache after change:\n%s", out3)
	}
	// without SOURCE_DATE_EPOCH a fully cached rebuild is still the same image
	res4, _, err := e.build(dir, Options{BuildArgs: map[string]string{"MSG": "override"}})
	if err != nil {
		t.Fatal(err)
	}
	if res4.ID != res3.ID {
		t.Errorf("cached rebuild changed the image: %s vs %s", res4.ID, res3.ID)
	}
}

// stepLine returns the status line (DONE/CACHED/ERROR) of the step whose
// header contains text.
func stepLine(out, text string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, text) && strings.HasPrefix(l, "#") {
			id := strings.Fields(l)[0]
			for _, m := range lines[i+1:] {
				if strings.HasPrefix(m, id+" CACHED") || strings.HasPrefix(m, id+" DONE") || strings.HasPrefix(m, id+" ERROR") {
					return m
				}
			}
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestBuildWithRuntimeRunner runs the multi-stage build's RUN steps as
// containers of berth's runtime instead of the namespace runner.
func TestBuildWithRuntimeRunner(t *testing.T) {
	e := newTestEnv(t)
	rt, err := runtime.New(filepath.Join(t.TempDir(), "rt"))
	if err != nil {
		t.Fatal(err)
	}
	e.b.runner = RuntimeRunner{RT: rt}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": multiStage +
		"RUN --network=none grep -c Seccomp:.2 /proc/self/status > /tmp/seccomp; echo fail; exit 4\n", "hello.txt": "hello\n"})
	_, out, err := e.build(dir, Options{})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 4 || !strings.Contains(out, "fail") {
		t.Fatalf("want exit 4 with output, got %v\n%s", err, out)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": multiStage +
		"RUN --network=none grep -c 'Seccomp:.2' /proc/self/status > /tmp/seccomp\n"})
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := e.readImageFile(res, "tmp/uid"); got != "1000\n" {
		t.Errorf("USER: uid %q", got)
	}
	if got := e.readImageFile(res, "tmp/seccomp"); got != "1\n" {
		t.Errorf("RUN without a seccomp filter: %q", got)
	}
	if list, _ := rt.List(); len(list) != 0 {
		t.Errorf("%d runtime containers left", len(list))
	}
}

func TestBuildRunFailure(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nRUN echo first\nRUN echo about to fail; echo more; exit 3\n"})
	_, out, err := e.build(dir, Options{})
	var ee *ExitError
	if err == nil || !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("want exit code 3, got %v\n%s", err, out)
	}
	if !strings.Contains(err.Error(), "Dockerfile:3") || !strings.Contains(err.Error(), "about to fail") {
		t.Errorf("error lacks line or output: %v", err)
	}
}

func TestBuildSymlinkEscape(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nCOPY link /x\n"})
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	_, out, err := e.build(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "outside the build context") {
		t.Fatalf("want escape error, got %v\n%s", err, out)
	}
}

func TestBuildRunNetworkAndMounts(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox:test\n" +
			"RUN --network=none cat /proc/net/dev | wc -l > /netdevs\n" +
			"RUN (echo x > /proc/sysrq-trigger) 2>/dev/null; echo $? > /sysrq; wc -c < /proc/timer_list > /kcore\n" +
			"RUN grep -c 'Seccomp:.2' /proc/self/status > /seccomp; grep CapBnd /proc/self/status > /capbnd\n" +
			"RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count\n" +
			"RUN --mount=type=bind,source=src,target=/mnt cat /mnt/a > /a\n" +
			"COPY <<EOF /inline.txt\ninline $A\nEOF\n" +
			"RUN <<EOT\necho heredoc > /heredoc\nEOT\n" +
			"RUN <<EOT\n#!/bin/sh\necho shebang > /shebang\nEOT\n",
		"src/a": "from-bind\n",
	})
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := strings.TrimSpace(e.readImageFile(res, "netdevs")); got != "3" { // 2 header lines + lo
		t.Errorf("--network=none sees %s lines of /proc/net/dev", got)
	}
	if got := e.readImageFile(res, "seccomp"); got != "1\n" {
		t.Errorf("RUN without the seccomp filter: %q", got)
	}
	if got := e.readImageFile(res, "capbnd"); got != "CapBnd:\t00000000a80425fb\n" {
		t.Errorf("RUN bounding set %q, want Docker's default", got)
	}
	if got := e.readImageFile(res, "sysrq"); got == "0\n" {
		t.Error("/proc/sysrq-trigger is writable in RUN")
	}
	if got := e.readImageFile(res, "kcore"); got != "0\n" {
		t.Errorf("/proc/timer_list not masked: %q bytes", got)
	}
	if got := e.readImageFile(res, "a"); got != "from-bind\n" {
		t.Errorf("bind mount: %q", got)
	}
	if got := e.readImageFile(res, "heredoc"); got != "heredoc\n" {
		t.Errorf("heredoc RUN: %q", got)
	}
	if got := e.readImageFile(res, "shebang"); got != "shebang\n" {
		t.Errorf("heredoc script: %q", got)
	}
	if got := e.readImageFile(res, "inline.txt"); got != "inline \n" {
		t.Errorf("heredoc COPY: %q", got)
	}
	writeFiles(t, dir, map[string]string{"src/a": "changed\n"})
	res1, out1, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out1)
	}
	if got := e.readImageFile(res1, "a"); got != "changed\n" {
		t.Errorf("a changed bind source did not rerun the RUN: %q\n%s", got, out1)
	}
	res2, out2, err := e.build(dir, Options{NoCache: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, out2)
	}
	if got := strings.TrimSpace(e.readImageFile(res2, "count")); got != "2" {
		t.Errorf("cache mount did not persist: count %s", got)
	}
}

func TestBuildAddChownOnbuild(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"tree/sub/f": "in-tar", "plain.txt": "p"})
	// a gzip tar of tree/ made with busybox tar, then the tree removed
	if out, err := exec.Command("/bin/busybox", "tar", "czf", filepath.Join(dir, "t.tar.gz"), "-C", dir, "tree").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	os.RemoveAll(filepath.Join(dir, "tree"))
	writeFiles(t, dir, map[string]string{
		"Dockerfile.base": "FROM busybox:test\nONBUILD COPY plain.txt /onbuild.txt\nONBUILD RUN echo triggered > /trig\n",
		"Dockerfile": "FROM base:test\n" +
			"ADD t.tar.gz /opt/\n" +
			"COPY --chown=app:staff --chmod=0640 plain.txt /owned\n" +
			"RUN stat -c '%u:%g %a' /owned > /owned.stat\n",
	})
	if _, out, err := e.build(dir, Options{Dockerfile: "Dockerfile.base", Tags: []string{"base:test"}}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := e.readImageFile(res, "opt/tree/sub/f"); got != "in-tar" {
		t.Errorf("ADD of a tar.gz: %q", got)
	}
	if got := e.readImageFile(res, "owned.stat"); got != "1000:50 640\n" {
		t.Errorf("--chown/--chmod: %q", got)
	}
	if e.readImageFile(res, "onbuild.txt") != "p" || e.readImageFile(res, "trig") != "triggered\n" {
		t.Error("ONBUILD triggers did not run")
	}
	if img := imageConfig(t, res); len(img.Config.OnBuild) != 0 {
		t.Errorf("triggers inherited: %v", img.Config.OnBuild)
	}
}

// TestCleanupAfterKilledBuild simulates a build killed mid-step: a mounted
// snapshot whose owner is gone. The next build removes it; a snapshot still
// in use by a live build is left alone.
func TestCleanupAfterKilledBuild(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	base, err := e.ls.Image(ctx, "busybox:test")
	if err != nil {
		t.Fatal(err)
	}
	live, err := e.ls.Prepare(ctx, base.Layers)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := e.ls.Prepare(ctx, base.Layers)
	if err != nil {
		t.Fatal(err)
	}
	deadRf := dead.(*storeRootfs)
	deadRf.lock.Close() // the process holding it died
	if err := e.ls.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	snaps, _ := e.store.Snapshots()
	if len(snaps) != 1 || snaps[0].Key != live.(*storeRootfs).key {
		t.Errorf("after cleanup: %d snapshots", len(snaps))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), deadRf.dir) {
		t.Error("the dead build's mount is still there")
	}
	if _, err := os.Stat(filepath.Join(live.Path(), "bin/busybox")); err != nil {
		t.Errorf("the live build lost its rootfs: %v", err)
	}
	live.Release(ctx)
}

// TestBuildDefaultNetwork runs a RUN behind the build bridge: it sees an
// interface besides lo and a default route; the bridge is gone afterwards.
func TestBuildDefaultNetwork(t *testing.T) {
	e := newTestEnv(t)
	runRoot := t.TempDir()
	m, err := network.New(network.Options{Root: e.root, RunRoot: runRoot, NoDNS: true,
		Pool4: network.Pool{Base: netip.MustParsePrefix("10.213.240.0/20"), Bits: 24}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bn := &BridgeNetwork{M: m, LockDir: filepath.Join(e.root, "netlocks"), Keep: true}
	e.b.SetNetwork(bn)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\n" +
		"RUN cat /proc/net/dev | wc -l > /devs && cat /proc/net/route | wc -l > /routes && hostname > /host\n"})
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := strings.TrimSpace(e.readImageFile(res, "devs")); got != "4" {
		t.Errorf("/proc/net/dev has %s lines, want lo and eth0", got)
	}
	if got := strings.TrimSpace(e.readImageFile(res, "routes")); got == "1" {
		t.Error("no route in the build namespace")
	}
	// the bridge stays for the next build; its endpoint is gone
	if _, err := netlink.LinkByName(network.BridgeName(e.root, BuildNetworkName)); err != nil {
		t.Errorf("the build bridge was removed after the build: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(runRoot, "netns")); len(entries) != 0 {
		t.Errorf("sandboxes left: %v", entries)
	}
	defer func() {
		if _, err := e.b.Prune(context.Background(), true); err != nil {
			t.Error(err)
		}
		if _, err := netlink.LinkByName(network.BridgeName(e.root, BuildNetworkName)); err == nil {
			t.Error("builder prune --all left the build bridge")
		}
	}()
	// a build killed during a RUN leaves its endpoint (and no lock); the
	// next build's cleanup removes it, while a live build's endpoint stays
	ctx := context.Background()
	live, releaseLive, err := bn.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseLive()
	if _, err := m.Attach(ctx, network.Endpoint{ID: "build-dead", Name: "build-dead",
		Networks: []state.NetworkAttachment{{Network: BuildNetworkName}}}); err != nil {
		t.Fatal(err)
	}
	if err := bn.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	eps, err := m.Endpoints(ctx, BuildNetworkName)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := eps["build-dead"]; ok || len(eps) != 1 {
		t.Errorf("after cleanup: %v", eps)
	}
	if _, err := os.Stat(live.NetnsPath); err != nil {
		t.Errorf("the live build lost its namespace: %v", err)
	}
}

// TestBuildIndependentStagesInParallel: stages a and b each wait (through a
// shared cache mount) for the other to have started; built one after the
// other, the first would give up and fail.
func TestBuildIndependentStagesInParallel(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	wait := func(me, other string) string {
		return "RUN --mount=type=cache,id=rendezvous,target=/c touch /c/" + me +
			" && for i in $(seq 100); do [ -e /c/" + other + " ] && break; sleep 0.1; done; [ -e /c/" + other + " ] && echo " + me + " > /" + me + "\n"
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test AS a\n" + wait("a", "b") +
		"FROM busybox:test AS b\n" + wait("b", "a") +
		"FROM busybox:test\nCOPY --from=a /a /a\nCOPY --from=1 /b /b\nCOPY --from=busybox:test /etc/group /g\n"})
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("stages did not run together: %v\n%s", err, out)
	}
	if e.readImageFile(res, "a") != "a\n" || e.readImageFile(res, "b") != "b\n" {
		t.Error("final stage lacks the files of a and b (by name and by index)")
	}
	if !strings.Contains(e.readImageFile(res, "g"), "staff") {
		t.Error("COPY --from=image")
	}
}

func TestBuildAddHostileTar(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "ok", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg},
		{Name: "../../../../../../tmp/berth-evil", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg},
	} {
		tw.WriteHeader(h)
		tw.Write([]byte("x"))
	}
	tw.Close()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nADD evil.tar /x/\n", "evil.tar": buf.String()})
	os.Remove("/tmp/berth-evil")
	_, out, err := e.build(dir, Options{})
	if err == nil {
		t.Errorf("a tar entry climbing out was accepted\n%s", out)
	}
	if _, err := os.Stat("/tmp/berth-evil"); err == nil {
		os.Remove("/tmp/berth-evil")
		t.Fatal("ADD wrote outside the image")
	}
}

// TestBuildAddURL serves a file on loopback: ADD downloads it, checks
// --checksum, and a wrong checksum fails the build.
func TestBuildAddURL(t *testing.T) {
	e := newTestEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("remote\n")) }))
	defer srv.Close()
	sum := "sha256:" + fmt.Sprintf("%x", sha256.Sum256([]byte("remote\n")))
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nADD --checksum=" + sum + " " + srv.URL + "/f.txt /dl/\n"})
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := e.readImageFile(res, "dl/f.txt"); got != "remote\n" {
		t.Errorf("downloaded %q", got)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nADD --checksum=sha256:" + strings.Repeat("0", 64) + " " + srv.URL + "/f.txt /dl/\n"})
	if _, _, err := e.build(dir, Options{}); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("wrong checksum: %v", err)
	}
}
