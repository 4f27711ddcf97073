package gitops

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// sopsProject is a worker whose env_file and secret are SOPS documents.
func sopsProject(name string) string {
	return fmt.Sprintf(`name: %s
services:
  worker:
    image: localhost/busybox:demo
    pull_policy: never
    init: true
    stop_grace_period: 1s
    command: ["sleep", "1000000"]
    env_file: secret.env
    secrets: [tok]
secrets:
  tok:
    file: ./token.txt
`, name)
}

// TestSyncSOPS (root, the built binary): a project whose env_file and
// secret file are encrypted with SOPS for an age key given with
// --age-key-file runs with the decrypted values; a commit encrypted for
// another key is Degraded naming the file while the previous revision
// keeps running; a fix converges. No plaintext is left under the sync's
// state directory (checkout, record, private load directory).
func TestSyncSOPS(t *testing.T) {
	m := newMachine(t, "s")
	u := newUpstream(t)
	id, _ := age.GenerateX25519Identity()
	stranger, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "age.txt")
	os.WriteFile(keyFile, []byte("# berth test key\n"+id.String()+"\n"), 0o600)

	c1 := u.commit("one", map[string]string{
		"deploy/compose.yaml": sopsProject(m.project),
		"deploy/secret.env":   sopsEncrypt(t, "secret.env", "DB_PASSWORD=hunter2-v1\n", id),
		"deploy/token.txt":    sopsEncrypt(t, "token.txt", "token-v1\n", id),
	})
	ctl := m.startSync("file://"+u.bare, "--ref", "main", "--path", "deploy", "--interval", "300ms",
		"--health-timeout", "20s", "--age-key-file", keyFile)
	m.waitStatus(ctl, "first revision applied", func(s *Status) bool {
		return s.Applied == c1 && s.State == Synced && healthOf(s, "worker") == "running"
	})
	inside := func(args ...string) string {
		t.Helper()
		out, err := m.berth(append([]string{"exec", "-p", m.project, "-T", "worker"}, args...)...)
		if err != nil {
			t.Fatalf("exec %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(out)
	}
	if v := inside("sh", "-c", "echo $DB_PASSWORD"); v != "hunter2-v1" {
		t.Fatalf("the container sees DB_PASSWORD=%q", v)
	}
	if v := inside("cat", "/run/secrets/tok"); v != "token-v1" {
		t.Fatalf("the container's secret holds %q", v)
	}
	if v := inside("sh", "-c", "env | grep -c '^sops_' || true"); v != "0" {
		t.Fatalf("sops metadata in the container's environment: %s", v)
	}
	worker1 := m.ids("worker")
	gitopsDir := filepath.Join(m.root, "gitops")
	noPlaintext(t, gitopsDir, "hunter2", "token-v1")

	// encrypted for a key the controller does not have: Degraded, named,
	// the previous revision keeps running
	c2 := u.commit("wrong key", map[string]string{
		"deploy/secret.env": sopsEncrypt(t, "secret.env", "DB_PASSWORD=hunter2-v2\n", stranger),
	})
	s := m.waitStatus(ctl, "the undecryptable revision failed", func(s *Status) bool {
		return s.State == Degraded && s.Wanted == c2 && s.Applied == c1
	})
	if !strings.Contains(s.LastError, "deploy/secret.env") || !strings.Contains(s.LastError, stranger.Recipient().String()) {
		t.Fatalf("the error does not name the file and its recipient: %q", s.LastError)
	}
	if m.ids("worker") != worker1 || inside("sh", "-c", "echo $DB_PASSWORD") != "hunter2-v1" {
		t.Fatalf("the running revision was touched by one that does not decrypt")
	}

	// a fix for the right key converges; the container is recreated with
	// the new value (the decrypted environment is in its config hash)
	c3 := u.commit("fix", map[string]string{
		"deploy/secret.env": sopsEncrypt(t, "secret.env", "DB_PASSWORD=hunter2-v3\n", id),
		"deploy/token.txt":  sopsEncrypt(t, "token.txt", "token-v3\n", id),
	})
	m.waitStatus(ctl, "the fix applied", func(s *Status) bool {
		return s.Applied == c3 && s.State == Synced && healthOf(s, "worker") == "running"
	})
	if m.ids("worker") == worker1 {
		t.Fatal("worker not recreated by a new secret value")
	}
	if v := inside("sh", "-c", "echo $DB_PASSWORD"); v != "hunter2-v3" {
		t.Fatalf("after the fix the container sees %q", v)
	}
	if v := inside("cat", "/run/secrets/tok"); v != "token-v3" {
		t.Fatalf("after the fix the secret holds %q", v)
	}
	noPlaintext(t, gitopsDir, "hunter2", "token-v")
	if !strings.Contains(ctl.output(), "decrypted 2 sops document(s)") {
		t.Errorf("the controller does not say it decrypted:\n%s", ctl.output())
	}
}
