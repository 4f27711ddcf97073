// Package topdir marks the directories that hold one subdirectory per
// container (records, run state, snapshots) as tops of directory
// hierarchies (FS_TOPDIR_FL, `chattr +T`), so that ext4 spreads their
// subdirectories over its block groups instead of packing them, and every
// file in them, into the group of the parent.
//
// It matters on an ext4 without a journal (this development machine's
// root): there, allocating an inode skips every inode of the group freed
// in the last half minute, reading each one's on-disk copy to see when
// (recently_deleted, find_inode_bit). A `down` of 50 containers frees about
// a thousand inodes of berth's directories, and the `up` after it
// allocates as many, each scanning past all of them: 41 % of the machine's
// CPU during an `up -d` of 50 (perf: recently_deleted,
// find_get_block_common, ext4_get_group_desc, find_inode_bit), the `up`
// twice as slow after a few rounds of up and down. Spread over the groups,
// each allocation meets only the few its own group freed. On a journaled
// ext4 nothing is skipped and the mark only spreads directories, which
// other file systems ignore.
package topdir

import (
	"os"

	"golang.org/x/sys/unix"
)

// fsTopdirFL is FS_TOPDIR_FL of linux/fs.h.
const fsTopdirFL = 0x00020000

// MkdirAll is os.MkdirAll, then Mark of the directory.
func MkdirAll(path string, perm os.FileMode) error {
	if err := os.MkdirAll(path, perm); err != nil {
		return err
	}
	Mark(path)
	return nil
}

// Mark sets the flag on directory path when the file system has it; a file
// system without it, or a failure, leaves the directory as it is (the flag
// only changes where new subdirectories go).
func Mark(path string) {
	fd, flags, err := open(path)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if flags&fsTopdirFL == 0 {
		unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFL))
	}
}

// Marked tells whether path has the flag.
func Marked(path string) bool {
	fd, flags, err := open(path)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return flags&fsTopdirFL != 0
}

// open opens directory path and reads its inode flags.
func open(path string) (fd int, flags uint32, err error) {
	fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	if flags, err = unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, flags, nil
}
