package gitops

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
)

// FuzzVerifySignature: any header value is refused without a panic unless
// it is the body's HMAC, and the real HMAC is always accepted.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte("k"), []byte("{}"), "sha256=00", "")
	f.Add([]byte("k"), []byte(""), "", "zz")
	f.Add([]byte(""), []byte("x"), "sha256=", "")
	f.Fuzz(func(t *testing.T, secret, body []byte, hub, gitea string) {
		h := http.Header{}
		if hub != "" {
			h.Set("X-Hub-Signature-256", hub)
		}
		if gitea != "" {
			h.Set("X-Gitea-Signature", gitea)
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		want := hex.EncodeToString(mac.Sum(nil))
		err := VerifySignature(secret, body, h)
		if len(secret) > 0 && err == nil {
			got := gitea
			if hub != "" {
				got = hub[len("sha256="):]
			}
			if b, _ := hex.DecodeString(strings.TrimSpace(got)); !hmac.Equal(b, mac.Sum(nil)) {
				t.Fatalf("accepted %q / %q for %s", hub, gitea, want)
			}
		}
		good := http.Header{}
		good.Set("X-Hub-Signature-256", "sha256="+want)
		if err := VerifySignature(secret, body, good); err != nil {
			t.Fatalf("valid signature refused: %v", err)
		}
		good = http.Header{}
		good.Set("X-Gitea-Signature", want)
		if err := VerifySignature(secret, body, good); err != nil {
			t.Fatalf("valid gitea signature refused: %v", err)
		}
	})
}
