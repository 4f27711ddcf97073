package builder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/berth-dev/berth/store/archive"
	"golang.org/x/crypto/ssh/agent"
)

// imageHas says whether name exists (not followed) in a built image.
func (e *testEnv) imageHas(res *Result, name string) bool {
	e.t.Helper()
	rf, err := e.ls.Prepare(context.Background(), res.Layers)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rf.Release(context.Background())
	_, err = os.Lstat(filepath.Join(rf.Path(), name))
	return err == nil
}

// layersContain says whether any layer of the image holds needle, in a
// file's content or a name (layers decompressed).
func (e *testEnv) layersContain(res *Result, needle string) bool {
	e.t.Helper()
	for _, l := range res.Layers {
		f, err := e.store.OpenBlob(l.Digest)
		if err != nil {
			e.t.Fatal(err)
		}
		r, _, err := archive.Decompress(f)
		if err != nil {
			f.Close()
			e.t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		f.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		if bytes.Contains(data, []byte(needle)) {
			return true
		}
	}
	return false
}

func TestBuildSymbolicChmod(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"f": "x", "d/g": "y",
		"Dockerfile": "FROM busybox:test\n" +
			"COPY --chmod=u+x,g-w f /f\n" +
			"COPY --chmod=a+X,o-r d /d\n" +
			"RUN stat -c '%a' /f /d /d/g > /modes\n"})
	os.Chmod(filepath.Join(dir, "f"), 0o664)
	os.Chmod(filepath.Join(dir, "d"), 0o750)
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// f 664 → u+x 764 → g-w 744; the directory /d is merged into (made
	// 755 by the copy), d/g 644 has no x bit so X adds none
	if got := e.readImageFile(res, "modes"); got != "744\n755\n640\n" {
		t.Errorf("modes %q", got)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nCOPY --chmod=u+q f /f\n"})
	if _, _, err := e.build(dir, Options{}); err == nil || !strings.Contains(err.Error(), "--chmod") {
		t.Errorf("bad symbolic mode: %v", err)
	}
}

// TestBuildSecretMount: the secret is readable at its target with its
// mode and owner, or as an environment variable; it is in no layer, no
// mount point is left in the image, its value does not invalidate the
// cache, and a missing required secret fails the step.
func TestBuildSecretMount(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	secretFile := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(secretFile, []byte("s3cr3t-value"), 0o600)
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\n" +
		"RUN --mount=type=secret,id=tok test \"$(cat /run/secrets/tok)\" = s3cr3t-value && stat -c '%a %u' /run/secrets/tok > /st1\n" +
		"RUN --mount=type=secret,id=tok,env=TOK,target=/opt/s/t,uid=1000,mode=0440 test \"$TOK\" = s3cr3t-value && stat -c '%a %u' /opt/s/t > /st2\n" +
		"RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo ok > /optional\n"})
	o := Options{Secrets: map[string]SecretSource{"tok": {File: secretFile}}}
	res, out, err := e.build(dir, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := e.readImageFile(res, "st1") + e.readImageFile(res, "st2"); got != "400 0\n440 1000\n" {
		t.Errorf("secret file modes %q", got)
	}
	if e.readImageFile(res, "optional") != "ok\n" {
		t.Error("optional secret")
	}
	if e.layersContain(res, "s3cr3t-value") {
		t.Error("the secret's value is in a layer")
	}
	for _, p := range []string{"run", "opt"} {
		if e.imageHas(res, p) {
			t.Errorf("mount point %s left in the image", p)
		}
	}
	// another value: still cached, as BuildKit (a secret is not content)
	os.WriteFile(secretFile, []byte("other"), 0o600)
	if _, out, err = e.build(dir, o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if l := stepLine(out, "id=tok test"); !strings.Contains(l, "CACHED") {
		t.Errorf("secret step not cached on a new value: %q\n%s", l, out)
	}
	// a new secret value reaches a step that is not cached
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nRUN --mount=type=secret,id=tok,env=T test \"$T\" = other\n"})
	if _, out, err = e.build(dir, o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nRUN --mount=type=secret,id=nope,required true\n"})
	if _, _, err := e.build(dir, o); err == nil || !strings.Contains(err.Error(), "secret nope") {
		t.Errorf("missing required secret: %v", err)
	}
}

func TestParseSecretAndSSH(t *testing.T) {
	t.Setenv("BERTH_T_TOKEN", "v")
	for _, tc := range []struct {
		in, id string
		want   SecretSource
	}{
		{"id=a,src=/f", "a", SecretSource{File: "/f"}},
		{"id=a,source=/f", "a", SecretSource{File: "/f"}},
		{"id=a,env=E", "a", SecretSource{Env: "E"}},
		{"id=BERTH_T_TOKEN", "BERTH_T_TOKEN", SecretSource{Env: "BERTH_T_TOKEN"}},
		{"id=BERTH_T_TOKEN,type=file", "BERTH_T_TOKEN", SecretSource{File: "BERTH_T_TOKEN"}},
		{"id=nofile", "nofile", SecretSource{File: "nofile"}},
	} {
		id, src, err := ParseSecret(tc.in)
		if err != nil || id != tc.id || src != tc.want {
			t.Errorf("%s: %q %+v %v", tc.in, id, src, err)
		}
	}
	for _, bad := range []string{"src=/f", "id=a,bogus=1", "id"} {
		if _, _, err := ParseSecret(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if id, p, err := ParseSSH("default"); err != nil || id != "default" || len(p) != 0 {
		t.Errorf("default: %s %v %v", id, p, err)
	}
	if id, p, err := ParseSSH("gh=/k1,/k2"); err != nil || id != "gh" || len(p) != 2 {
		t.Errorf("keys: %s %v %v", id, p, err)
	}
}

// testAgent serves an in-memory SSH agent with one key on a socket.
func testAgent(t *testing.T) (string, *int) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: priv, Comment: "berth-test-key"}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns := new(int)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			*conns++
			go func() { agent.ServeAgent(kr, c); c.Close() }()
		}
	}()
	return sock, conns
}

// agentClient builds testdata/agentclient statically into dir.
func agentClient(t *testing.T, dir string) {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", filepath.Join(dir, "agentclient"), "./testdata/agentclient")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build agentclient: %v\n%s", err, out)
	}
}

// TestBuildSSHMount: a RUN step (as a non-root user, the socket given to
// its uid) reaches the caller's agent through SSH_AUTH_SOCK, and keys
// given as files are served by an agent of the builder.
func TestBuildSSHMount(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	agentClient(t, dir)
	sock, conns := testAgent(t)
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nUSER app\n" +
		"RUN --mount=type=bind,source=agentclient,target=/ac --mount=type=ssh,uid=1000 /ac > /tmp/keys\n" +
		"RUN --mount=type=ssh,id=none test -z \"$SSH_AUTH_SOCK\" && echo none > /tmp/none\n"})
	res, out, err := e.build(dir, Options{SSH: map[string][]string{"default": {sock}}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := e.readImageFile(res, "tmp/keys"); got != "keys=1 comment=berth-test-key\n" {
		t.Errorf("agent answer %q", got)
	}
	if *conns == 0 {
		t.Error("the agent saw no connection")
	}
	if e.readImageFile(res, "tmp/none") != "none\n" || e.imageHas(res, "run/buildkit") {
		t.Error("optional ssh mount, or the socket's mount point left behind")
	}
	// without the agent the required mount fails
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nRUN --mount=type=ssh,required=true true\n"})
	if _, _, err := e.build(dir, Options{}); err == nil || !strings.Contains(err.Error(), "ssh default") {
		t.Errorf("required ssh without agent: %v", err)
	}
}

// gitServer serves the bare repositories under root over git's smart HTTP
// protocol (git http-backend) on 127.0.0.1.
func gitServer(t *testing.T, root string) string {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skip("git http-backend is not installed")
	}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@t", "GIT_COMMITTER_DATE=2020-01-02T03:04:05Z", "GIT_AUTHOR_DATE=2020-01-02T03:04:05Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestBuildAddGit: ADD of a repository over HTTP at a tag, a branch's
// subdirectory and with --keep-git-dir; an unchanged ref is a cache hit,
// a moved branch rebuilds its step only.
func TestBuildAddGit(t *testing.T) {
	e := newTestEnv(t)
	srvRoot, work := t.TempDir(), t.TempDir()
	url := gitServer(t, srvRoot)
	runGit(t, srvRoot, "init", "-q", "--bare", "-b", "main", "repo.git")
	runGit(t, work, "init", "-q", "-b", "main")
	writeFiles(t, work, map[string]string{"a.txt": "v1", "sub/b.txt": "b1", ".dockerignore": "a.txt"})
	runGit(t, work, "add", ".")
	runGit(t, work, "commit", "-q", "-m", "one")
	runGit(t, work, "tag", "-a", "v1", "-m", "v1")
	runGit(t, work, "push", "-q", filepath.Join(srvRoot, "repo.git"), "main", "v1")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\n" +
		"ADD " + url + "/repo.git#v1 /tag\n" +
		"ADD " + url + "/repo.git#main:sub /sub\n" +
		"ADD --keep-git-dir=true " + url + "/repo.git /kept\n"})
	res, out, err := e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := e.readImageFile(res, "tag/a.txt") + e.readImageFile(res, "tag/sub/b.txt"); got != "v1b1" {
		t.Errorf("ADD at tag: %q (the repository's .dockerignore must not apply)", got)
	}
	if got := e.readImageFile(res, "sub/b.txt"); got != "b1" || e.imageHas(res, "sub/sub") || e.imageHas(res, "sub/a.txt") {
		t.Errorf("ADD of a subdir: %q", got)
	}
	if e.imageHas(res, "tag/.git") || !e.imageHas(res, "kept/.git/HEAD") {
		t.Error(".git kept without --keep-git-dir, or dropped with it")
	}
	writeFiles(t, work, map[string]string{"sub/b.txt": "b2"})
	runGit(t, work, "commit", "-q", "-am", "two")
	runGit(t, work, "push", "-q", filepath.Join(srvRoot, "repo.git"), "main")
	res, out, err = e.build(dir, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if l := stepLine(out, "repo.git#v1"); !strings.Contains(l, "CACHED") {
		t.Errorf("unchanged tag rebuilt: %q", l)
	}
	if l := stepLine(out, "repo.git#main:sub"); strings.Contains(l, "CACHED") {
		t.Errorf("moved branch cached: %q", l)
	}
	if got := e.readImageFile(res, "sub/b.txt"); got != "b2" {
		t.Errorf("after a push: %q", got)
	}
	head := runGit(t, work, "rev-parse", "HEAD")
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox:test\nADD --checksum=" + head[:12] + " " + url + "/repo.git#" + head + " /c\nADD --checksum=0123456 " + url + "/repo.git /d\n"})
	if _, _, err := e.build(dir, Options{}); err == nil || !strings.Contains(err.Error(), "does not match checksum") {
		t.Errorf("wrong commit checksum: %v", err)
	}
}

func TestGitSourceParse(t *testing.T) {
	for _, tc := range []struct{ src, remote, ref, sub string }{
		{"https://github.com/x/y.git#v1:dir", "https://github.com/x/y.git", "v1", "dir"},
		{"git@github.com:x/y.git#main", "git@github.com:x/y.git", "main", ""},
		{"ssh://git@h/x/y#:d", "ssh://git@h/x/y", "", "d"},
		{"https://h/x/y.git?ref=t&subdir=s", "https://h/x/y.git", "t", "s"},
		{"github.com/x/y", "https://github.com/x/y", "", ""},
	} {
		gr, ok := gitSource(tc.src)
		if !ok || gr.Remote != tc.remote || gr.Ref != tc.ref || gr.SubDir != tc.sub {
			t.Errorf("%s: %v %+v", tc.src, ok, gr)
		}
	}
	for _, notGit := range []string{"https://h/file.tar.gz", "dir/x.git", "./a", "http://h/y.git.txt"} {
		if _, ok := gitSource(notGit); ok {
			t.Errorf("%s taken for git", notGit)
		}
	}
}

// TestBuildCopyLink: a COPY --link layer does not depend on the steps
// before it: changing an earlier step reuses it (same layer), and its
// files still land where a plain COPY would put them.
func TestBuildCopyLink(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"data/a": "A", "data/s/b": "B",
		"Dockerfile": "FROM busybox:test\nARG X\nWORKDIR /w\nRUN echo $X > /x\nCOPY --link --chmod=0600 data/ d/\nRUN cat /x d/a d/s/b > /all\n"})
	r1, out, err := e.build(dir, Options{BuildArgs: map[string]string{"X": "1"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := e.readImageFile(r1, "all"); got != "1\nAB" {
		t.Errorf("files %q", got)
	}
	r2, out, err := e.build(dir, Options{BuildArgs: map[string]string{"X": "2"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if l := stepLine(out, "COPY --link"); !strings.Contains(l, "CACHED") {
		t.Errorf("--link layer rebuilt after an earlier step changed: %q\n%s", l, out)
	}
	if l := stepLine(out, "RUN cat"); strings.Contains(l, "CACHED") {
		t.Errorf("the step after a --link copy must chain on what came before: %q", l)
	}
	if got := e.readImageFile(r2, "all"); got != "2\nAB" {
		t.Errorf("files %q", got)
	}
	n := len(r1.Layers)
	if n < 3 || r1.Layers[n-2].Digest != r2.Layers[n-2].Digest {
		t.Error("the --link layer differs between the builds")
	}
}
