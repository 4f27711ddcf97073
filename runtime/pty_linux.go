package runtime

import (
	"os"

	"golang.org/x/sys/unix"
)

// OpenPty allocates a pseudo-terminal pair from the multiplexer at ptmx
// ("/dev/ptmx" for the host's devpts; a container's pts/ptmx seen from the
// host for its own). The slave is opened from the master itself
// (TIOCGPTPEER), never by a path an image could have replaced. Its size is
// the caller's terminal's when stdin is one.
func OpenPty(ptmx string) (master, slave *os.File, err error) {
	master, slave, _, err = openPtyPair(ptmx)
	if err != nil {
		return nil, nil, err
	}
	if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, ws)
	}
	return master, slave, nil
}

// openPtyPair opens the master at ptmx, unlocks it and opens its slave; n is
// the pty's number (its name is pts/N).
func openPtyPair(ptmx string) (master, slave *os.File, n uint32, err error) {
	master, err = os.OpenFile(ptmx, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, 0, err
	}
	mfd := int(master.Fd())
	if err = unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err == nil {
		n, err = unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	}
	if err != nil {
		master.Close()
		return nil, nil, 0, err
	}
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		master.Close()
		return nil, nil, 0, errno
	}
	return master, os.NewFile(fd, "pty slave"), n, nil
}
