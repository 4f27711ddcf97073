package gitops

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/berth-dev/berth/secrets/sops"
	"github.com/berth-dev/berth/state"
)

// sopsEncrypt encrypts a test file for recipients, in the format its name
// gives.
func sopsEncrypt(t testing.TB, name, plain string, to ...*age.X25519Identity) string {
	t.Helper()
	var rs []*age.X25519Recipient
	for _, id := range to {
		rs = append(rs, id.Recipient())
	}
	b, err := sops.Encrypt([]byte(plain), sops.FormatOf(name), rs...)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func envOf(d *state.Desired, svc string) map[string]string {
	m := map[string]string{}
	for _, kv := range d.Services[svc].Container.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// noPlaintext fails when a secret's clear text is in any file under dir.
func noPlaintext(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%q in clear in %s", s, p)
			}
		}
		return nil
	})
}

// TestSopsDecryptOnLoad drives the poller alone (no machine): a revision
// whose .env, env_file, secret file and then compose file are SOPS
// documents loads with their plaintext (environment and secret content in
// memory, nothing in clear on disk); one encrypted for another key, and
// one tampered with, fail naming the file and leave the applied revision.
func TestSopsDecryptOnLoad(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	stranger, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "keys.txt")
	os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600)

	u := newUpstream(t)
	compose := `name: t
services:
  a:
    image: busybox
    env_file: app.env
    environment:
      OVERRIDE: from-compose
      FROM_DOTENV: ${DOTENV_VAR}
    secrets: [tok]
secrets:
  tok:
    file: ./token.txt
`
	c1 := u.commit("one", map[string]string{
		"p/compose.yaml": compose,
		"p/.env":         sopsEncrypt(t, ".env", "DOTENV_VAR=dotenv-secret\n", id),
		"p/app.env":      sopsEncrypt(t, "app.env", "DB_PASSWORD=hunter2\nOVERRIDE=from-file\n", id),
		"p/token.txt":    sopsEncrypt(t, "token.txt", "token-secret\n", id),
	})
	dir := t.TempDir()
	// what a controller killed during a load would have left
	os.MkdirAll(filepath.Join(dir, plainDir, "0"), 0o700)
	os.WriteFile(filepath.Join(dir, plainDir, "0", "compose.yaml"), []byte("leftover"), 0o600)
	c, err := New(Options{URL: u.bare, Ref: "main", Path: "p", StateDir: dir, AgeKeyFile: keyFile, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, plainDir)); !os.IsNotExist(err) {
		t.Fatalf("a decrypted file left by a killed controller survives its restart: %v", err)
	}
	ctx := context.Background()
	c.poll(ctx)
	r, _ := LoadRecord(dir)
	if c.cand == nil || c.cand.rev != c1 {
		t.Fatalf("first revision not applied: %+v", r)
	}
	env := envOf(c.cand.desired, "a")
	if env["DB_PASSWORD"] != "hunter2" || env["OVERRIDE"] != "from-compose" || env["FROM_DOTENV"] != "dotenv-secret" {
		t.Fatalf("environment: %v", env)
	}
	for k, v := range env {
		if strings.HasPrefix(k, "sops_") || strings.Contains(v, "ENC[") {
			t.Fatalf("sops data in the environment: %s=%s", k, v)
		}
	}
	files := c.cand.desired.Services["a"].Container.Files
	if len(files) != 1 || string(files[0].Content) != "token-secret\n" || files[0].Source != "" {
		t.Fatalf("secret file: %+v", files)
	}
	for _, in := range []string{"p/.env", "p/app.env", "p/token.txt"} {
		if !slices.Contains(c.cand.inputs, in) {
			t.Fatalf("%s not among the inputs %v", in, c.cand.inputs)
		}
	}
	c.accept(c.cand)
	noPlaintext(t, dir, "hunter2", "dotenv-secret", "token-secret")

	// the compose file itself encrypted: loaded from a private copy that
	// is gone after the load; containers are labelled with the repository path
	c2 := u.commit("compose encrypted", map[string]string{
		"p/compose.yaml": sopsEncrypt(t, "compose.yaml", strings.Replace(compose, "image: busybox", "image: busybox:1.36", 1), id),
	})
	c.poll(ctx)
	if c.cand == nil || c.cand.rev != c2 {
		r, _ := LoadRecord(dir)
		t.Fatalf("encrypted compose file: %+v", r.LastError)
	}
	d := c.cand.desired
	if d.Services["a"].Image.Ref != "busybox:1.36" || envOf(d, "a")["DB_PASSWORD"] != "hunter2" {
		t.Fatalf("encrypted compose file not loaded: %+v %v", d.Services["a"].Image, envOf(d, "a"))
	}
	want := filepath.Join(c.repo.WorkDir(), "p", "compose.yaml")
	if !slices.Equal(d.ConfigFiles, []string{want}) || d.Services["a"].Container.Labels[state.LabelConfigFiles] != want {
		t.Fatalf("config files %v, label %q", d.ConfigFiles, d.Services["a"].Container.Labels[state.LabelConfigFiles])
	}
	if d.WorkingDir != filepath.Join(c.repo.WorkDir(), "p") {
		t.Fatalf("working dir %s", d.WorkingDir)
	}
	if _, err := os.Stat(filepath.Join(dir, plainDir)); !os.IsNotExist(err) {
		t.Fatalf("decrypted compose file left behind: %v", err)
	}
	c.accept(c.cand)
	noPlaintext(t, dir, "hunter2", "dotenv-secret", "token-secret", "busybox:1.36")

	// encrypted for another key: failed, named, the applied one stays
	c3 := u.commit("wrong key", map[string]string{
		"p/app.env": sopsEncrypt(t, "app.env", "DB_PASSWORD=other\n", stranger),
	})
	c.poll(ctx)
	r, _ = LoadRecord(dir)
	if r.Failed != c3 || r.Applied != c2 || r.State() != Degraded ||
		!strings.Contains(r.LastError, "p/app.env") || !strings.Contains(r.LastError, stranger.Recipient().String()) {
		t.Fatalf("wrong key: failed %s applied %s state %s error %q", r.Failed, r.Applied, r.State(), r.LastError)
	}
	if c.cand != nil {
		t.Fatal("a revision that does not decrypt became the candidate")
	}

	// an encrypted compose file with an error: named by its repository path
	cBad := u.commit("bad compose", map[string]string{
		"p/compose.yaml": sopsEncrypt(t, "compose.yaml", compose+"volumes: [oops]\n", id),
	})
	c.poll(ctx)
	r, _ = LoadRecord(dir)
	if r.Failed != cBad || !strings.Contains(r.LastError, filepath.Join(c.repo.WorkDir(), "p", "compose.yaml")) ||
		strings.Contains(r.LastError, "/"+plainDir+"/") {
		t.Fatalf("broken encrypted compose file: failed %s error %q", r.Failed, r.LastError)
	}
	t.Logf("broken encrypted compose file: %s", r.LastError)
	u.commit("compose back", map[string]string{"p/compose.yaml": compose})

	// tampered with: a value changed in clear
	good := sopsEncrypt(t, "app.env", "DB_PASSWORD=hunter2\nOVERRIDE=from-file\nLEVEL_unencrypted=1\n", id)
	c.poll(ctx)
	c4 := u.commit("fixed", map[string]string{"p/app.env": good})
	c.poll(ctx)
	if c.cand == nil || c.cand.rev != c4 {
		r, _ = LoadRecord(dir)
		t.Fatalf("fixed revision: %s", r.LastError)
	}
	c.accept(c.cand)
	c5 := u.commit("tampered", map[string]string{"p/app.env": strings.Replace(good, "LEVEL_unencrypted=1", "LEVEL_unencrypted=2", 1)})
	c.poll(ctx)
	r, _ = LoadRecord(dir)
	if r.Failed != c5 || r.Applied != c4 || !strings.Contains(r.LastError, "p/app.env") || !strings.Contains(r.LastError, "MAC mismatch") {
		t.Fatalf("tampered: failed %s applied %s error %q", r.Failed, r.Applied, r.LastError)
	}
	// the working tree is back at the applied revision
	if b, _ := os.ReadFile(filepath.Join(c.repo.WorkDir(), "p", "app.env")); string(b) != good {
		t.Fatal("working tree not put back")
	}
}
