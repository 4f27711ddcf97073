package builder

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// SecretSource is where a build secret's value comes from: a file or an
// environment variable of the caller (docker build --secret id=X,src=F|env=V),
// else Value (compose's inline and environment secrets).
type SecretSource struct {
	File  string
	Env   string
	Value string
}

func (s SecretSource) read() ([]byte, error) {
	if s.File != "" {
		return os.ReadFile(s.File)
	}
	if s.Env == "" {
		return []byte(s.Value), nil
	}
	v, ok := os.LookupEnv(s.Env)
	if !ok {
		return nil, fmt.Errorf("environment variable %s is not set", s.Env)
	}
	return []byte(v), nil
}

// ParseSecret reads a --secret flag: id=X[,src=F|source=F|env=V][,type=file|env].
// Without src or env the value is the environment variable named like the
// id, else the file named like it, as docker build does.
func ParseSecret(v string) (string, SecretSource, error) {
	var id, typ string
	var s SecretSource
	for _, f := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return "", s, fmt.Errorf("invalid --secret %q: %q is not key=value", v, f)
		}
		switch strings.ToLower(k) {
		case "id":
			id = val
		case "src", "source":
			s.File = val
		case "env":
			s.Env = val
		case "type":
			typ = val
		default:
			return "", s, fmt.Errorf("invalid --secret %q: unknown key %q", v, k)
		}
	}
	if id == "" {
		return "", s, fmt.Errorf("invalid --secret %q: no id", v)
	}
	if s.File == "" && s.Env == "" {
		if _, ok := os.LookupEnv(id); ok && typ != "file" || typ == "env" {
			s.Env = id
		} else {
			s.File = id
		}
	}
	if typ == "env" && s.File != "" && s.Env == "" {
		s.Env, s.File = s.File, ""
	}
	return id, s, nil
}

// ParseSSH reads a --ssh flag: default, or id[=socket|key[,key...]]. A
// missing path means $SSH_AUTH_SOCK.
func ParseSSH(v string) (string, []string, error) {
	id, paths, _ := strings.Cut(v, "=")
	if id == "" {
		return "", nil, fmt.Errorf("invalid --ssh %q", v)
	}
	var out []string
	for _, p := range strings.Split(paths, ",") {
		if p != "" {
			out = append(out, p)
		}
	}
	return id, out, nil
}

// secretMount resolves RUN --mount=type=secret: the value is written to a
// file in a private directory on a tmpfs (/dev/shm when there is one) and
// bind-mounted read-only at the target, or handed over as an environment
// variable (env=). It never enters the rootfs (the mount point is removed
// after the step) nor the cache key. A missing secret is an error only
// when required.
func (r *buildRun) secretMount(m *instructions.Mount) (*specs.Mount, string, func(), error) {
	id := m.CacheID
	if m.Source != "" {
		id = m.Source
	}
	if id == "" {
		id = path.Base(m.Target)
	}
	src, ok := r.o.Secrets[id]
	if !ok {
		if m.Required {
			return nil, "", func() {}, fmt.Errorf("secret %s: not provided (berth build --secret id=%s,src=FILE)", id, id)
		}
		return nil, "", func() {}, nil
	}
	value, err := src.read()
	if err != nil {
		return nil, "", func() {}, fmt.Errorf("secret %s: %w", id, err)
	}
	var env string
	if m.Env != nil {
		name := *m.Env
		if name == "" {
			name = id
		}
		env = name + "=" + string(value)
		if m.Target == "" {
			return nil, env, func() {}, nil
		}
	}
	target := m.Target
	if target == "" {
		target = "/run/secrets/" + path.Base(id)
	}
	dir, err := privateTmp("berth-secret-")
	if err != nil {
		return nil, "", func() {}, err
	}
	done := func() { os.RemoveAll(dir) }
	mode, uid, gid := os.FileMode(0o400), 0, 0
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode) & 0o7777
	}
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	file := filepath.Join(dir, "secret")
	err = os.WriteFile(file, value, 0o600)
	if err == nil && os.Geteuid() == 0 {
		err = os.Chown(file, uid, gid)
	}
	if err == nil {
		err = os.Chmod(file, mode)
	}
	if err != nil {
		done()
		return nil, "", func() {}, fmt.Errorf("secret %s: %w", id, err)
	}
	return &specs.Mount{Type: "bind", Source: file, Destination: target, Options: []string{"rbind", "ro"}}, env, done, nil
}

// privateTmp is a 0700 directory on a tmpfs when the host has /dev/shm,
// so that secrets do not touch a disk.
func privateTmp(prefix string) (string, error) {
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	return os.MkdirTemp(base, prefix)
}

// sshMount resolves RUN --mount=type=ssh: a socket at the target (default
// /run/buildkit/ssh_agent.N) that forwards every connection to the
// caller's agent (SSH_AUTH_SOCK, or the socket given with --ssh id=PATH),
// or serves the keys given with --ssh id=KEY[,KEY]. SSH_AUTH_SOCK points
// at it inside the step. The socket is owned by uid/gid with mode (0600).
func (r *buildRun) sshMount(m *instructions.Mount, n int) (*specs.Mount, string, func(), error) {
	id := m.CacheID
	if id == "" {
		id = "default"
	}
	paths, ok := r.o.SSH[id]
	if !ok {
		if m.Required {
			return nil, "", func() {}, fmt.Errorf("ssh %s: no agent forwarded (berth build --ssh %s)", id, id)
		}
		return nil, "", func() {}, nil
	}
	if len(paths) == 0 {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, "", func() {}, fmt.Errorf("ssh %s: SSH_AUTH_SOCK is not set", id)
		}
		paths = []string{sock}
	}
	serve, err := agentBackend(paths)
	if err != nil {
		return nil, "", func() {}, fmt.Errorf("ssh %s: %w", id, err)
	}
	target := m.Target
	if target == "" {
		target = fmt.Sprintf("/run/buildkit/ssh_agent.%d", n)
	}
	dir, err := privateTmp("berth-ssh-")
	if err != nil {
		return nil, "", func() {}, err
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", func() {}, err
	}
	mode, uid, gid := os.FileMode(0o600), 0, 0
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode) & 0o777
	}
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	if os.Geteuid() == 0 {
		os.Chown(sock, uid, gid)
	}
	os.Chmod(sock, mode)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	done := func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		os.RemoveAll(dir)
	}
	return &specs.Mount{Type: "bind", Source: sock, Destination: target, Options: []string{"rbind"}},
		"SSH_AUTH_SOCK=" + target, done, nil
}

// agentBackend serves one agent connection: forwarded to a socket, or
// answered from a keyring of private key files.
func agentBackend(paths []string) (func(net.Conn), error) {
	if len(paths) == 1 {
		if st, err := os.Stat(paths[0]); err == nil && st.Mode()&os.ModeSocket != 0 {
			sock := paths[0]
			return func(c net.Conn) {
				up, err := net.Dial("unix", sock)
				if err != nil {
					return
				}
				defer up.Close()
				ch := make(chan struct{}, 2)
				go func() { io.Copy(up, c); up.(*net.UnixConn).CloseWrite(); ch <- struct{}{} }()
				go func() { io.Copy(c, up); c.(*net.UnixConn).CloseWrite(); ch <- struct{}{} }()
				<-ch
				<-ch
			}, nil
		}
	}
	keyring := agent.NewKeyring()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		key, err := ssh.ParseRawPrivateKey(data)
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("%s: keys with a passphrase need an agent", p)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
			return nil, err
		}
	}
	return func(c net.Conn) { agent.ServeAgent(keyring, c) }, nil
}
