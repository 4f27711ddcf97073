package gitops

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// authFor picks credentials the way git does by default: for ssh the agent
// when one runs, else the usual key files under ~/.ssh (unencrypted, or
// with the passphrase in BERTH_SSH_PASSPHRASE); host keys are checked
// against ~/.ssh/known_hosts (go-git's default). http(s) credentials come
// from the URL's user info, which go-git reads itself.
func authFor(rawURL string) (transport.AuthMethod, error) {
	user, ok := sshUser(rawURL)
	if !ok {
		return nil, nil
	}
	if os.Getenv("SSH_AUTH_SOCK") != "" {
		if a, err := gitssh.NewSSHAgentAuth(user); err == nil {
			return a, nil
		}
	}
	home, _ := os.UserHomeDir()
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(home, ".ssh", name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		a, err := gitssh.NewPublicKeysFromFile(user, p, os.Getenv("BERTH_SSH_PASSPHRASE"))
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	return nil, nil // go-git falls back to the agent and reports what failed
}

// sshUser tells whether rawURL is an ssh one (ssh://user@host/path or the
// scp form user@host:path) and the user to log in as.
func sshUser(rawURL string) (string, bool) {
	if strings.HasPrefix(rawURL, "ssh://") || strings.HasPrefix(rawURL, "git+ssh://") {
		u, err := url.Parse(rawURL)
		if err != nil || u.User == nil {
			return "git", err == nil
		}
		return u.User.Username(), true
	}
	if strings.Contains(rawURL, "://") || isLocalPath(rawURL) {
		return "", false
	}
	if user, _, ok := strings.Cut(strings.SplitN(rawURL, ":", 2)[0], "@"); ok {
		return user, true
	}
	return "git", true
}
