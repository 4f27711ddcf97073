package gitops

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// upstream is a bare repository plus a clone to commit from, driven with
// the git command line as a user would.
type upstream struct {
	t          *testing.T
	bare, work string
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	d := t.TempDir()
	u := &upstream{t: t, bare: filepath.Join(d, "repo.git"), work: filepath.Join(d, "src")}
	u.git(d, "init", "-q", "--bare", "-b", "main", u.bare)
	u.git(d, "init", "-q", "-b", "main", u.work)
	return u
}

func (u *upstream) git(dir string, args ...string) string {
	u.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		u.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path → content; "" deletes) and pushes; it returns the new commit.
func (u *upstream) commit(msg string, files map[string]string) string {
	u.t.Helper()
	for p, c := range files {
		full := filepath.Join(u.work, p)
		if c == "" {
			os.Remove(full)
			continue
		}
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
	u.git(u.work, "add", "-A")
	u.git(u.work, "commit", "-q", "--allow-empty", "-m", msg)
	u.git(u.work, "push", "-q", u.bare, "HEAD:refs/heads/main")
	return u.git(u.work, "rev-parse", "HEAD")
}

func TestRepoFetchCheckoutFingerprint(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("one", map[string]string{"app/compose.yaml": "a", "other/x": "1"})
	for _, url := range []string{u.bare, "file://" + u.bare} {
		r, err := OpenRepo(url, "main", filepath.Join(t.TempDir(), "sync"))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		h, ref, err := r.Remote(ctx)
		if err != nil || h.String() != c1 || ref != "refs/heads/main" {
			t.Fatalf("remote: %v %s %s", err, h, ref)
		}
		if err := r.Fetch(ctx, ref, h); err != nil {
			t.Fatal(err)
		}
		if err := r.Checkout(ctx, h); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(r.WorkDir(), "app/compose.yaml")); string(b) != "a" {
			t.Fatalf("checked out %q", b)
		}
		f1, err := r.Fingerprint(h, []string{"app", "app/compose.yaml", "nothere"})
		if err != nil {
			t.Fatal(err)
		}
		if f1["nothere"] != "absent" || f1["app"] == "absent" {
			t.Fatalf("fingerprint %v", f1)
		}
		// a commit elsewhere leaves the fingerprint; one under app/ changes it
		c2 := u.commit("two", map[string]string{"other/x": "2"})
		c3 := u.commit("three", map[string]string{"app/compose.yaml": "b", "app/gone": ""})
		h3, _, err := r.Remote(ctx)
		if err != nil || h3.String() != c3 {
			t.Fatalf("remote after push: %v %s", err, h3)
		}
		if err := r.Fetch(ctx, ref, h3); err != nil {
			t.Fatal(err)
		}
		f3, _ := r.Fingerprint(h3, []string{"app", "app/compose.yaml", "nothere"})
		if f3["app"] == f1["app"] || f3["nothere"] != "absent" {
			t.Fatalf("fingerprint did not change: %v %v", f1, f3)
		}
		if err := r.Checkout(ctx, h3); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(r.WorkDir(), "app/compose.yaml")); string(b) != "b" {
			t.Fatalf("checked out %q", b)
		}
		// what a container wrote into a bind-mounted directory survives
		os.MkdirAll(filepath.Join(r.WorkDir(), "app/data"), 0o755)
		os.WriteFile(filepath.Join(r.WorkDir(), "app/data/db"), []byte("rows"), 0o644)
		// and a tracked file edited by hand is put back
		os.WriteFile(filepath.Join(r.WorkDir(), "app/compose.yaml"), []byte("edited"), 0o644)
		os.Remove(filepath.Join(r.WorkDir(), "other/x"))
		// the earlier revision stays available for rollbacks
		if err := r.Checkout(ctx, h); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(r.WorkDir(), "app/compose.yaml")); string(b) != "a" {
			t.Fatalf("rolled back to %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(r.WorkDir(), "other/x")); len(b) != 1 {
			t.Fatalf("deleted tracked file not restored: %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(r.WorkDir(), "app/data/db")); string(b) != "rows" {
			t.Fatalf("checkout removed untracked data: %q", b)
		}
		if _, err := os.Stat(filepath.Join(r.WorkDir(), "app/gone")); err == nil {
			t.Fatalf("a file of no checked-out revision is there")
		}
		if got, err := r.Resolve(c1[:10]); err != nil || got != h {
			t.Fatalf("resolve: %v %s", err, got)
		}
		_ = c2
		// the clone is shallow: c2 was never fetched
		if r.Has(hashOf(c2)) {
			t.Errorf("intermediate commit fetched: not shallow")
		}
		c1 = u.commit("reset", map[string]string{"app/compose.yaml": "a"})
	}
}

// TestRepoFollowsTag follows an annotated tag: the peeled commit is the
// revision, and moving the tag is a new revision.
func TestRepoFollowsTag(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("one", map[string]string{"f": "1"})
	u.git(u.work, "tag", "-a", "-m", "release", "v1")
	u.git(u.work, "push", "-q", u.bare, "refs/tags/v1")
	r, err := OpenRepo("file://"+u.bare, "v1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, ref, err := r.Remote(ctx)
	if err != nil || h.String() != c1 || ref != "refs/tags/v1" {
		t.Fatalf("remote: %v %s %s", err, h, ref)
	}
	if err := r.Fetch(ctx, ref, h); err != nil {
		t.Fatal(err)
	}
	c2 := u.commit("two", map[string]string{"f": "2"})
	u.git(u.work, "tag", "-f", "-a", "-m", "release", "v1")
	u.git(u.work, "push", "-q", "-f", u.bare, "refs/tags/v1")
	if h, _, err = r.Remote(ctx); err != nil || h.String() != c2 {
		t.Fatalf("moved tag: %v %s", err, h)
	}
	if err := r.Fetch(ctx, ref, h); err != nil {
		t.Fatal(err)
	}
	if err := r.Checkout(ctx, h); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(r.WorkDir(), "f")); string(b) != "2" {
		t.Fatalf("checked out %q", b)
	}
	missing, err := OpenRepo("file://"+u.bare, "nope", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := missing.Remote(ctx); err == nil || !strings.Contains(err.Error(), `no ref "nope"`) {
		t.Fatalf("missing ref: %v", err)
	}
}

// TestRepoHTTPBasicAuth fetches from git http-backend behind basic auth
// with the credentials in the URL, which never show in messages.
func TestRepoHTTPBasicAuth(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("one", map[string]string{"f": "1"})
	base := gitHTTP(t, filepath.Dir(u.bare))
	// gitHTTP serves without auth; put a check in front of the same URL space
	inner := strings.TrimPrefix(base, "http://")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "deploy" || pass != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		r.URL.Scheme, r.URL.Host = "http", strings.SplitN(inner, "/", 2)[0]
		resp, err := http.DefaultTransport.RoundTrip(r.Clone(r.Context()))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		maps.Copy(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	path := "/git/" + filepath.Base(u.bare)
	ctx := context.Background()
	good := "http://deploy:pw@" + strings.TrimPrefix(srv.URL, "http://") + path
	r, err := OpenRepo(good, "main", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := r.Remote(ctx); err != nil || h.String() != c1 {
		t.Fatalf("with credentials: %v %s", err, h)
	}
	bad := "http://deploy:wrong@" + strings.TrimPrefix(srv.URL, "http://") + path
	r, _ = OpenRepo(bad, "main", t.TempDir())
	_, _, err = r.Remote(ctx)
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong password: %v", err)
	}
	if Redact(good) != "http://deploy:xxxxx@"+strings.TrimPrefix(srv.URL, "http://")+path ||
		StateDir("/r", good, "main", "") != StateDir("/r", bad, "main", "") {
		t.Errorf("redaction: %s", Redact(good))
	}
}
