package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// authProxy fronts a registry with basic auth, or with token auth whose
// token endpoint takes basic auth, as Docker Hub does.
func authProxy(t *testing.T, registry string, token bool) string {
	const user, pass, tok = "berth", "s3cret", "tok-123"
	target, _ := url.Parse("http://" + registry)
	proxy := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		basicOK := ok && u == user && p == pass
		if r.URL.Path == "/token" {
			if !basicOK {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"token": tok})
			return
		}
		if token && r.Header.Get("Authorization") == "Bearer "+tok || !token && basicOK {
			proxy.ServeHTTP(w, r)
			return
		}
		if token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, addr))
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		}
		w.WriteHeader(http.StatusUnauthorized)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	// Credentials where docker login would put them.
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, addr, auth)), 0o600)
	t.Setenv("DOCKER_CONFIG", cfgDir)
	return addr
}

func TestRegistryAuth(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	s := openStore(t)
	if _, err := s.ImportRootfs(ctx, busyboxRootfs(t), "bb", ocispec.ImageConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, token := range []bool{false, true} {
		t.Run(fmt.Sprintf("token=%v", token), func(t *testing.T) {
			addr := authProxy(t, reg, token)
			ref := addr + "/auth/bb:1"
			if err := s.Push(ctx, "bb", ref, RegistryOptions{Keychain: authn.NewMultiKeychain()}); err == nil {
				t.Fatal("push without credentials succeeded")
			}
			if err := s.Push(ctx, "bb", ref, RegistryOptions{}); err != nil {
				t.Fatalf("push with ~/.docker/config.json credentials: %v", err)
			}
			if _, err := openStore(t).Pull(ctx, ref, RegistryOptions{}); err != nil {
				t.Fatalf("pull: %v", err)
			}
		})
	}
}
