package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var probeBin struct {
	once sync.Once
	path string
	err  error
}

// probe builds testdata/probe.c static once per test binary.
func probe(t *testing.T) string {
	t.Helper()
	probeBin.once.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			probeBin.err = err
			return
		}
		dir, err := os.MkdirTemp("", "berth-probe-")
		if err != nil {
			probeBin.err = err
			return
		}
		probeBin.path = filepath.Join(dir, "probe")
		out, err := exec.Command("gcc", "-static", "-O2", "-o", probeBin.path, "testdata/probe.c").CombinedOutput()
		if err != nil {
			probeBin.err = err
			t.Logf("gcc: %s", out)
		}
	})
	if probeBin.err != nil {
		t.Skipf("needs gcc with static libc to build the probe: %v", probeBin.err)
	}
	return probeBin.path
}

func withProbe(t *testing.T, s *specs.Spec) *specs.Spec {
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/probe", Type: "bind", Source: probe(t), Options: []string{"bind", "ro"}})
	return s
}

func secureSpec(t *testing.T, args ...string) *specs.Spec {
	s := withProbe(t, testSpec(t, args...))
	sc, err := DefaultSeccomp(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Linux.Seccomp = sc
	return s
}

// TestSecurityAttemptsFail runs real escape attempts from inside a
// default container; every one must fail.
func TestSecurityAttemptsFail(t *testing.T) {
	r := newTestRuntime(t)
	canary := "/run/berth-escape-canary"
	os.WriteFile(canary, []byte("host"), 0o644)
	defer os.Remove(canary)
	s := runToEnd(t, r, "probe", CreateOptions{Spec: secureSpec(t, "/probe")})
	out := logText(t, r, "probe")
	t.Logf("probe output:\n%s", out)
	if s.ExitCode != 0 || strings.Contains(out, "BREACH") || !strings.Contains(out, "breaches 0") {
		t.Fatalf("exit %d; breaches:\n%s", s.ExitCode, out)
	}
	for _, check := range []string{"overwrite-self-exe", "leaked-fds", "mknod-disk", "mount", "unshare", "keyctl", "init_module", "read-kcore", "write-proc-sys", "host-processes", "caps"} {
		if !strings.Contains(out, check+" ok") {
			t.Errorf("check %s did not run", check)
		}
	}
}

// TestExecCannotOverwriteRuntime holds /proc/N/exe of every process that
// appears in the container while execs run, then writes through them.
func TestExecCannotOverwriteRuntime(t *testing.T) {
	r := newTestRuntime(t)
	self, _ := os.Executable()
	before := fileHash(t, self)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := r.Run(ctx, "race", CreateOptions{Spec: secureSpec(t, "/probe", "exe-race")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := r.Exec(ctx, "race", &specs.Process{Args: []string{"true"}}, ExecOptions{}); err != nil {
			t.Fatalf("exec: %v", err)
		}
	}
	s, err := r.Wait(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	out := logText(t, r, "race")
	t.Logf("%s", out)
	if s.ExitCode != 0 || !strings.Contains(out, "exe-race ok") {
		t.Fatalf("exit %d: %s", s.ExitCode, out)
	}
	if !bytes.Equal(before, fileHash(t, self)) {
		t.Fatal("the runtime binary changed")
	}
}

func fileHash(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return h[:]
}

// TestSymlinkedProcDevRejected: an image whose /proc or /dev is a symlink
// to a host path must not make the runtime mount over host paths.
func TestSymlinkedProcDevRejected(t *testing.T) {
	r := newTestRuntime(t)
	for _, name := range []string{"proc", "dev"} {
		rootfs := t.TempDir()
		os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
		os.Link("/bin/busybox", filepath.Join(rootfs, "bin/sh"))
		target := t.TempDir() // stands for a host path
		for _, d := range []string{"proc", "dev", "sys"} {
			if d == name {
				os.Symlink(target, filepath.Join(rootfs, d))
			} else {
				os.Mkdir(filepath.Join(rootfs, d), 0o755)
			}
		}
		s := DefaultSpec([]string{"/bin/sh", "-c", "true"})
		s.Root = &specs.Root{Path: rootfs}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := r.Create(ctx, "sym"+name, CreateOptions{Spec: s})
		cancel()
		if err == nil {
			t.Errorf("/%s as a symlink: create succeeded", name)
		}
		ents, _ := os.ReadDir(target)
		if len(ents) != 0 {
			t.Errorf("/%s as a symlink: runtime wrote %d entries to the link target", name, len(ents))
		}
		if m, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(m), target) {
			t.Errorf("/%s as a symlink: something was mounted on the target", name)
		}
	}
	// /dev/null as a symlink to a host file: replaced, never followed.
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	os.MkdirAll(filepath.Join(rootfs, "proc"), 0o755)
	os.MkdirAll(filepath.Join(rootfs, "sys"), 0o755)
	os.MkdirAll(filepath.Join(rootfs, "dev"), 0o755)
	os.Link("/bin/busybox", filepath.Join(rootfs, "bin/sh"))
	hostFile := filepath.Join(t.TempDir(), "host-file")
	os.WriteFile(hostFile, []byte("keep"), 0o600)
	os.Symlink(hostFile, filepath.Join(rootfs, "dev/null"))
	s := DefaultSpec([]string{"/bin/sh", "-c", "echo x > /dev/null"})
	s.Root = &specs.Root{Path: rootfs}
	runToEnd(t, r, "devnull", CreateOptions{Spec: s})
	if b, _ := os.ReadFile(hostFile); string(b) != "keep" {
		t.Fatalf("host file changed to %q", b)
	}
}
