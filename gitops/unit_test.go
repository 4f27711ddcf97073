package gitops

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestVerifySignature(t *testing.T) {
	secret, body := []byte("k"), []byte(`{"ref":"refs/heads/main"}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	sig := hex.EncodeToString(mac.Sum(nil))
	for _, tc := range []struct {
		name   string
		secret []byte
		hdr    map[string]string
		ok     bool
	}{
		{"github", secret, map[string]string{"X-Hub-Signature-256": "sha256=" + sig}, true},
		{"gitea", secret, map[string]string{"X-Gitea-Signature": sig}, true},
		{"github without prefix", secret, map[string]string{"X-Hub-Signature-256": sig}, false},
		{"wrong secret", []byte("other"), map[string]string{"X-Hub-Signature-256": "sha256=" + sig}, false},
		{"not hex", secret, map[string]string{"X-Gitea-Signature": "zz"}, false},
		{"unsigned", secret, nil, false},
		{"sha1 only", secret, map[string]string{"X-Hub-Signature": "sha1=00"}, false},
		{"no secret configured", nil, nil, true},
	} {
		h := http.Header{}
		for k, v := range tc.hdr {
			h.Set(k, v)
		}
		if err := VerifySignature(tc.secret, body, h); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	// a tampered body fails even with a valid header for the original
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+sig)
	if VerifySignature(secret, append(body, ' '), h) == nil {
		t.Error("tampered body accepted")
	}
}

func TestRecordState(t *testing.T) {
	for _, tc := range []struct {
		r    Record
		want string
	}{
		{Record{}, Synced},
		{Record{Head: "a", Applied: "a"}, Synced},
		{Record{Head: "b", Applied: "a"}, OutOfSync},
		{Record{Head: "b", Applied: "a", Unchanged: "b"}, Synced},
		{Record{Head: "b", Applied: "a", Failed: "b"}, Degraded},
		{Record{Head: "c", Applied: "a", Failed: "b"}, OutOfSync},
		{Record{Head: "c", Applied: "a", Pin: &Pin{Revision: "a"}}, Synced},
		{Record{Head: "c", Applied: "c", Pin: &Pin{Revision: "a"}}, OutOfSync},
	} {
		if got := tc.r.State(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.r, got, tc.want)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := &Record{URL: "u", Head: "h"}
	for i := 0; i < maxHistory+10; i++ {
		r.History = append(r.History, Entry{Revision: fmt.Sprint(i), Result: ResultHealthy})
	}
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.History) != maxHistory || got.History[0].Revision != "10" || got.Head != "h" {
		t.Fatalf("history %d from %s", len(got.History), got.History[0].Revision)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if err := WritePinRequest(dir, "abc"); err != nil {
		t.Fatal(err)
	}
	req, err := takePinRequest(dir)
	if err != nil || req == nil || req.Revision != "abc" {
		t.Fatalf("pin request: %v %+v", err, req)
	}
	if req, _ := takePinRequest(dir); req != nil {
		t.Fatal("pin request taken twice")
	}
}

// TestGating loads revisions of a project whose env_file lives outside
// its directory: a commit elsewhere keeps the fingerprint, one to the
// env file or the project changes it.
func TestGating(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("one", map[string]string{
		"app/compose.yaml":  "services:\n  a:\n    image: busybox\n    env_file: ../shared/common.env\n",
		"shared/common.env": "A=1\n",
		"shared/other.env":  "B=1\n",
		"README":            "x\n",
	})
	c2 := u.commit("elsewhere", map[string]string{"shared/other.env": "B=2\n", "README": "y\n"})
	c3 := u.commit("env", map[string]string{"shared/common.env": "A=2\n"})
	c4 := u.commit("new file in app", map[string]string{"app/.env": "X=1\n"})
	repo, err := OpenRepo(u.bare, "main", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	head, ref, err := repo.Remote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// the shallow fetch brings only the head; fetch each revision by
	// moving a branch to it
	c := &Controller{o: Options{Path: "app", StateDir: repo.Dir}, repo: repo}
	fps := map[string]map[string]string{}
	var inputs []string
	for _, rev := range []string{c1, c2, c3, c4} {
		u.git(u.bare, "update-ref", "refs/heads/main", rev)
		head, _, err = repo.Remote(ctx)
		if err != nil || head.String() != rev {
			t.Fatal(err, head)
		}
		if err := repo.Fetch(ctx, ref, head); err != nil {
			t.Fatal(err)
		}
		if rev == c1 {
			l, err := c.checkoutAndLoad(ctx, head)
			if err != nil {
				t.Fatal(err)
			}
			inputs = l.inputs
			if !slices.Contains(inputs, "shared/common.env") || !slices.Contains(inputs, "app") || slices.Contains(inputs, "README") {
				t.Fatalf("inputs %v", inputs)
			}
		}
		fps[rev], err = repo.Fingerprint(plumbing.NewHash(rev), inputs)
		if err != nil {
			t.Fatal(err)
		}
	}
	if !maps.Equal(fps[c1], fps[c2]) {
		t.Errorf("a commit outside the inputs changed the fingerprint")
	}
	if maps.Equal(fps[c2], fps[c3]) {
		t.Errorf("a change to the env file kept the fingerprint")
	}
	if maps.Equal(fps[c3], fps[c4]) {
		t.Errorf("a new file under the project directory kept the fingerprint")
	}
}

func TestMetricsText(t *testing.T) {
	m := newMetrics()
	m.fetched(nil)
	m.applied("x", 1500e6, true)
	m.applied("y", 500e6, false)
	var b strings.Builder
	m.write(&b, &Record{URL: `a"b`, Head: "h", Applied: "a", Failed: "h"})
	out := b.String()
	for _, want := range []string{
		`berth_sync_info{url="a\"b",ref="",path="",project="",applied="a",wanted="h"} 1`,
		`berth_sync_state{state="Degraded"} 1`,
		`berth_sync_applies_total{result="failed"} 1`,
		"berth_sync_apply_duration_seconds_sum 2\n",
		"berth_sync_apply_duration_seconds_count 2\n",
		"# TYPE berth_sync_fetches_total counter\nberth_sync_fetches_total 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
}

func TestStateDirAndPaths(t *testing.T) {
	a := StateDir("/r", "https://h/x/app.git", "main", "deploy")
	b := StateDir("/r", "https://h/x/app.git", "prod", "deploy")
	if a == b || !strings.HasPrefix(filepath.Base(a), "app-") {
		t.Errorf("state dirs %s %s", a, b)
	}
	if s, ok := sshUser("git@github.com:o/r.git"); !ok || s != "git" {
		t.Errorf("scp form: %s %v", s, ok)
	}
	if s, ok := sshUser("ssh://deploy@h:2222/r.git"); !ok || s != "deploy" {
		t.Errorf("ssh url: %s %v", s, ok)
	}
	for _, u := range []string{"/srv/r.git", "file:///srv/r.git", "https://h/r.git", "./r"} {
		if _, ok := sshUser(u); ok {
			t.Errorf("%s taken for ssh", u)
		}
	}
}
