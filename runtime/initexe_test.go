package runtime

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An embedded init refuses to serve a berth of another build (their
// protocol is internal); a child started without a stamp (berth running
// its children from itself) is not checked.
func TestCheckStampRefusesAnotherBuild(t *testing.T) {
	saved := buildStamp
	defer func() { buildStamp = saved }()
	buildStamp = "build-a"
	t.Setenv(envStamp, "build-b")
	if err := checkStamp(); err == nil {
		t.Fatal("an init of build-a served berth of build-b")
	}
	if _, set := os.LookupEnv(envStamp); set {
		t.Fatal("the stamp stays in the environment the container's process may see")
	}
	t.Setenv(envStamp, "build-a")
	if err := checkStamp(); err != nil {
		t.Fatalf("same build: %v", err)
	}
	os.Unsetenv(envStamp)
	if err := checkStamp(); err != nil {
		t.Fatalf("no stamp: %v", err)
	}
}

// A seal the kernel refuses for a while (EBUSY: here a writable mapping,
// gone after 50 ms) is asked again until it holds; one refused for good
// fails.
func TestSealRetriesWhileBusy(t *testing.T) {
	fd, err := unix.MemfdCreate("seal-test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, 4096); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(50 * time.Millisecond); unix.Munmap(m) }()
	if err := seal(fd); err != nil {
		t.Fatalf("seal once the mapping went: %v", err)
	}
	if _, err := unix.Write(fd, []byte("x")); err == nil {
		t.Fatal("a sealed file took a write")
	}

	fd2, err := unix.MemfdCreate("seal-test-2", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd2)
	unix.Ftruncate(fd2, 4096)
	m2, err := unix.Mmap(fd2, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m2)
	if err := seal(fd2); err != unix.EBUSY {
		t.Fatalf("seal under a mapping that stays: %v, want EBUSY", err)
	}
}
