package gitops

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// maxDelivery bounds a webhook body: push payloads are a few hundred KiB.
const maxDelivery = 25 << 20

// VerifySignature checks a webhook delivery against secret the way GitHub
// (X-Hub-Signature-256: sha256=HEX) and Gitea/Forgejo (X-Gitea-Signature:
// HEX) sign it: HMAC-SHA256 of the raw body. An empty secret accepts
// everything (the controller announces that at start).
func VerifySignature(secret, body []byte, h http.Header) error {
	if len(secret) == 0 {
		return nil
	}
	var sig string
	if s := h.Get("X-Hub-Signature-256"); s != "" {
		var ok bool
		if sig, ok = strings.CutPrefix(s, "sha256="); !ok {
			return errors.New("X-Hub-Signature-256 is not sha256=HEX")
		}
	} else if s := h.Get("X-Gitea-Signature"); s != "" {
		sig = s
	} else {
		return errors.New("unsigned delivery (no X-Hub-Signature-256 or X-Gitea-Signature)")
	}
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return errors.New("signature is not hex")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("signature does not match the secret")
	}
	return nil
}

type server struct{ srv *http.Server }

func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// serve answers webhook deliveries (POST to any path) and /metrics.
func (c *Controller) serve(ln net.Listener) *server {
	if len(c.o.Secret) == 0 {
		c.logf("no --webhook-secret: deliveries are not verified (anyone who reaches %s can trigger a fetch)", ln.Addr())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		rec := *c.rec
		c.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		c.metrics.write(w, &rec)
	})
	mux.HandleFunc("POST /", c.webhook)
	s := &server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go s.srv.Serve(ln)
	return s
}

func (c *Controller) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDelivery))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if err := VerifySignature(c.o.Secret, body, r.Header); err != nil {
		c.logf("webhook from %s refused: %v", r.RemoteAddr, err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.Header.Get("X-GitHub-Event") == "ping" {
		io.WriteString(w, "pong\n")
		return
	}
	c.wake("webhook")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "fetching\n")
}
