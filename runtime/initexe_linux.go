package runtime

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The containers' init and exec children run a small binary of their own,
// cmd/berth-init (the runtime package and what it imports: 7.8 MB, 63
// package initialisations), which scripts/build.sh embeds in berth
// (-tags embedinit). Run from berth itself, a child first initialised the
// 196 packages Go orders before this one's init (the runtime package
// waits for `net`, which sorts late, and Go initialises every ready
// package sorting before it first): ~3.4 ms more CPU per child here, most
// of it page faults, paid by every spare, every container started cold and
// every exec (healthchecks). In a loop of `berth runtime run` that CPU was
// the difference with crun. A berth built without the tag (`go build`, `go
// install`) runs its children from itself, as before.
var initExe []byte

// buildStamp is set by scripts/build.sh, the same in berth and in the init
// it embeds; an embedded init refuses to run for a berth of another build
// (envStamp): their protocol is internal and changes with the code.
var buildStamp string

const envStamp = "_BERTH_BUILD_STAMP"

var initCopy struct {
	sync.Mutex
	file *os.File
}

// sealedChild is what a child is started from: a sealed copy of the
// embedded init when there is one (made once), else of berth itself.
func sealedChild() (exe *os.File, stamp string, err error) {
	if len(initExe) == 0 {
		exe, err = sealedSelf()
		return exe, "", err
	}
	initCopy.Lock()
	defer initCopy.Unlock()
	if initCopy.file == nil {
		// An error is not kept: the next child tries again.
		if initCopy.file, err = sealedCopy("berth-init", bytes.NewReader(initExe)); err != nil {
			return nil, "", err
		}
		dropPages(initExe)
	}
	return initCopy.file, buildStamp, nil
}

// sealedCopy copies src into a memfd sealed against writing, shrinking and
// growing.
func sealedCopy(name string, src io.Reader) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	dst := os.NewFile(uintptr(fd), name+"-sealed")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return nil, fmt.Errorf("copy %s: %w", name, err)
	}
	if err := seal(fd); err != nil {
		dst.Close()
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	return dst, nil
}

// seal forbids writing, shrinking and growing fd, and further seals. The
// kernel refuses F_SEAL_WRITE (EBUSY) while the file is mapped writable,
// or while a page of it holds a reference besides the page cache's after
// ~150 ms of waiting for it to go: that happened once in a CI run, on the
// first child of a monitor ("seal berth-init: device or resource busy";
// this machine runs DAMON, whose scans take such references, a likely
// cause). It is asked again, for about two seconds.
func seal(fd int) (err error) {
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals)
		if err != unix.EBUSY || wait > time.Second {
			return err
		}
		time.Sleep(wait)
	}
}

// checkStamp refuses a child role in an init of another build than the
// berth that started it.
func checkStamp() error {
	want, ok := os.LookupEnv(envStamp)
	os.Unsetenv(envStamp)
	if ok && want != buildStamp {
		return fmt.Errorf("berth-init of build %q started by berth of build %q: rebuild berth with scripts/build.sh", buildStamp, want)
	}
	return nil
}

// dropPages lets the pages of b, read once from the binary's image, leave
// this process's resident set (the monitor would otherwise keep the 7.8 MB
// it copied: 0.37 MiB per container in the supervision benchmark). They
// are clean file pages: read again from the file if ever touched.
func dropPages(b []byte) {
	if len(b) == 0 {
		return
	}
	page := os.Getpagesize()
	off := (page - int(uintptr(unsafe.Pointer(&b[0])))%page) % page // to b's first whole page
	if n := (len(b) - off) &^ (page - 1); off < len(b) && n > 0 {
		unix.Madvise(b[off:off+n], unix.MADV_DONTNEED)
	}
}
