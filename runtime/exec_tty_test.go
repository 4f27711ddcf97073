package runtime

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func openTestPty(t *testing.T) (*os.File, *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestExecWithTerminal: an exec with process.terminal gets the pty as its
// controlling terminal.
func TestExecWithTerminal(t *testing.T) {
	r := newTestRuntime(t)
	ctx := ctxT(t, 20*time.Second)
	if _, err := r.Run(ctx, "tty", CreateOptions{Spec: testSpec(t, "sleep", "30")}); err != nil {
		t.Fatal(err)
	}
	m, s := openTestPty(t)
	defer m.Close()
	out := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 512)
		for {
			n, err := m.Read(buf)
			b.Write(buf[:n])
			if err != nil || strings.Contains(b.String(), "done") {
				out <- b.String()
				return
			}
		}
	}()
	code, err := r.Exec(ctx, "tty", &specs.Process{Terminal: true, Args: []string{"sh", "-c", "test -t 0 && echo isatty; ps -o pid,tty | grep -c pts; echo done"}},
		ExecOptions{Stdio: []*os.File{s, s, s}})
	s.Close()
	if err != nil || code != 0 {
		t.Fatalf("exec: %d %v", code, err)
	}
	select {
	case got := <-out:
		if !strings.Contains(got, "isatty") {
			t.Fatalf("output %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no output")
	}
}
