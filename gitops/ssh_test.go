package gitops

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestRepoOverSSH fetches over ssh:// from a tiny in-process ssh server on
// 127.0.0.1 that runs git-upload-pack, with the client key taken from
// ~/.ssh/id_ed25519 and the host checked against ~/.ssh/known_hosts, as
// a user's setup would have them.
func TestRepoOverSSH(t *testing.T) {
	if _, err := exec.LookPath("git-upload-pack"); err != nil {
		t.Skip("git-upload-pack is not installed")
	}
	u := newUpstream(t)
	c1 := u.commit("one", map[string]string{"f": "1"})

	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	clientPub, clientKey, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(clientKey, "")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), pem.EncodeToMemory(block), 0o600)
	authorized, _ := ssh.NewPublicKey(clientPub)

	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hostKey)
	addr := serveSSH(t, hostSigner, authorized)
	_, port, _ := net.SplitHostPort(addr)
	known := fmt.Sprintf("[127.0.0.1]:%s %s", port, ssh.MarshalAuthorizedKey(hostSigner.PublicKey()))
	os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(known), 0o600)

	r, err := OpenRepo(fmt.Sprintf("ssh://git@127.0.0.1:%s%s", port, u.bare), "main", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, ref, err := r.Remote(ctx)
	if err != nil || h.String() != c1 {
		t.Fatalf("remote over ssh: %v %s", err, h)
	}
	if err := r.Fetch(ctx, ref, h); err != nil {
		t.Fatal(err)
	}

	// an unknown host key is refused
	os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), nil, 0o600)
	r2, err := OpenRepo(fmt.Sprintf("ssh://git@127.0.0.1:%s%s", port, u.bare), "main", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r2.Remote(ctx); err == nil {
		t.Fatal("a host missing from known_hosts was trusted")
	}
}

// serveSSH accepts the one client key and runs the git command an exec
// request names (git-upload-pack 'PATH').
func serveSSH(t *testing.T, host ssh.Signer, client ssh.PublicKey) string {
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(client.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveConn(conn, cfg)
		}
	}()
	return ln.Addr().String()
}

func serveConn(conn net.Conn, cfg *ssh.ServerConfig) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range creqs {
				if req.Type != "exec" || len(req.Payload) < 4 {
					req.Reply(false, nil)
					continue
				}
				line := string(req.Payload[4:])
				prog, arg, _ := strings.Cut(line, " ")
				if prog != "git-upload-pack" {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				cmd := exec.Command(prog, strings.Trim(arg, "'"))
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				status := uint32(0)
				if err := cmd.Run(); err != nil {
					status = 1
				}
				ch.CloseWrite()
				payload := binary.BigEndian.AppendUint32(nil, status)
				ch.SendRequest("exit-status", false, payload)
				return
			}
		}()
	}
}
