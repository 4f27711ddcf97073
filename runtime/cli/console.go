package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// runc's rules for --console-socket: a detached process with a terminal
// needs one, and one is refused when the process has no terminal or the
// command stays attached (an attached `run` relays its own pty instead).
func checkConsole(terminal, detach bool, socket string) error {
	if detach && terminal && socket == "" {
		return errors.New("cannot allocate tty if berth will detach without setting console socket")
	}
	if (!detach || !terminal) && socket != "" {
		return errors.New("cannot use console socket if berth will not detach or allocate tty")
	}
	return nil
}

// dialConsole connects to a console socket; the connection goes to the
// container's init, which sends the pty master over it.
func dialConsole(path string) (*os.File, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	return conn.File()
}

// consolePair is an attached run's own console socket: the runtime gets
// one end, RecvConsole reads the pty master from the other.
func consolePair() (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console-peer"), nil
}

// RecvConsole reads one pty master sent over a console socket (as runc's
// recvtty does): the message's data is the pty's name.
func RecvConsole(sock *os.File) (*os.File, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("console socket: no fd received (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("console socket: no fd received (%v)", err)
	}
	return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
}

// relayConsole connects the caller's terminal to a pty master until the
// container's side closes; the returned func restores the terminal.
func relayConsole(master *os.File) func() {
	if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
	}
	restore := MakeRaw(os.Stdin)
	go io.Copy(master, os.Stdin)
	done := make(chan struct{})
	go func() { io.Copy(os.Stdout, master); close(done) }()
	return func() {
		// The slave's last holder exited: drain what it wrote (EIO ends it).
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		restore()
	}
}
