package runtime

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// consoleListener is the test side of --console-socket: a listening unix
// socket at a path, as recvtty or containerd run it. dial is what the CLI
// hands the runtime; recv returns the pty master the container sent.
func consoleListener(t *testing.T) (dial func() *os.File, recv func() (*os.File, string)) {
	path := filepath.Join(t.TempDir(), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	dial = func() *os.File {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		f, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	recv = func() (*os.File, string) {
		ln.SetDeadline(time.Now().Add(10 * time.Second))
		conn, err := ln.AcceptUnix()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			t.Fatalf("control messages %v %v", msgs, err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			t.Fatalf("rights %v %v", fds, err)
		}
		return os.NewFile(uintptr(fds[0]), "pty-master"), string(buf[:n])
	}
	return dial, recv
}

// converse writes line to the pty master and reads until want shows up.
func converse(t *testing.T, master *os.File, line, want string) string {
	t.Helper()
	if _, err := master.WriteString(line); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	buf := make([]byte, 1024)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q after %q; got %q", want, line, b.String())
		}
		master.SetReadDeadline(deadline)
		n, err := master.Read(buf)
		b.Write(buf[:n])
		if err != nil && !strings.Contains(b.String(), want) {
			t.Fatalf("read after %q: %v; got %q", line, err, b.String())
		}
	}
	return b.String()
}

// TestConsoleSocket: a terminal: true container sends its pty master over
// the console socket; the test talks to the container's shell through it,
// then does the same with an exec.
func TestConsoleSocket(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 30*time.Second)
	dial, recv := consoleListener(t)
	s := testSpec(t, "sh")
	s.Process.Terminal = true
	s.Process.ConsoleSize = &specs.Box{Height: 40, Width: 123}
	sock := dial()
	if _, err := r.Create(ctx, "con", CreateOptions{Spec: s, ConsoleSocket: sock}); err != nil {
		t.Fatal(err)
	}
	sock.Close()
	master, name := recv()
	defer master.Close()
	if !strings.HasPrefix(name, "/dev/pts/") {
		t.Errorf("pty name %q", name)
	}
	if err := r.Start(ctx, "con"); err != nil {
		t.Fatal(err)
	}
	// The shell's stdio is the container's own pty (devpts instance of the
	// container: pts/0), its controlling terminal, of the size asked.
	out := converse(t, master, "tty; stty size; test -t 0 && echo is-a-tty; echo ans=$((6*7))\n", "ans=42")
	for _, want := range []string{"/dev/pts/0", "40 123", "is-a-tty"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in %q", want, out)
		}
	}
	// Job control needs a controlling terminal: ps shows the shell's tty.
	converse(t, master, "ps -o pid,tty | grep -c pts/0 >/dev/null && echo ctty-ok\n", "ctty-ok")

	// exec with its own console socket: a second pty of the same devpts.
	sock = dial()
	proc, err := r.ExecStart(ctx, "con", &specs.Process{Terminal: true, Args: []string{"sh"}}, ExecOptions{ConsoleSocket: sock})
	sock.Close()
	if err != nil {
		t.Fatal(err)
	}
	em, _ := recv()
	defer em.Close()
	converse(t, em, "tty; exit 7\n", "/dev/pts/1")
	st, err := proc.Wait()
	if err != nil || st.ExitCode() != 7 {
		t.Fatalf("exec exit %v %v", st, err)
	}

	converse(t, master, "exit 3\n", "exit 3")
	ws, err := r.Wait(ctx, "con")
	if err != nil || ws.ExitCode != 3 {
		t.Fatalf("wait: %+v %v", ws, err)
	}
}
