package runtime

import (
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The console socket (runc's --console-socket): with process.terminal, the
// container's process gets a pseudo-terminal allocated inside the container
// (on its own devpts, after pivot_root) as its stdio and controlling
// terminal, and the master side is sent over a unix socket the caller
// connected: one message whose data is the pty's name and whose SCM_RIGHTS
// carry the master fd, as runc sends it (recvtty, containerd and the
// runtime-tools read it so).

// setupConsole allocates the pty, sends its master over the socket at fd
// sockFd, and makes the slave fds 0, 1, 2 and the controlling terminal of
// this process (which becomes a session leader for that).
func setupConsole(sockFd int, size *specs.Box) error {
	sock := os.NewFile(uintptr(sockFd), "console-socket")
	defer sock.Close()
	master, slaveFile, n, err := openPtyPair("/dev/ptmx")
	if err != nil {
		return fmt.Errorf("console: allocate a pty: %w", err)
	}
	defer master.Close()
	defer slaveFile.Close()
	mfd, slave := int(master.Fd()), slaveFile.Fd()
	name := "/dev/pts/" + strconv.Itoa(int(n))
	if size != nil {
		unix.IoctlSetWinsize(int(slave), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)})
	}
	if err := unix.Sendmsg(int(sock.Fd()), []byte(name), unix.UnixRights(mfd), nil, 0); err != nil {
		return fmt.Errorf("console: send the pty master: %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(slave), fd, 0); err != nil {
			return fmt.Errorf("console: %w", err)
		}
	}
	if _, err := unix.Setsid(); err != nil && err != unix.EPERM {
		return fmt.Errorf("console: setsid: %w", err)
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("console: set controlling terminal: %w", err)
	}
	return nil
}
