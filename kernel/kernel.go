// Package kernel answers what the running Linux kernel can do, where a
// feature has no probe of its own cheaper than its version.
package kernel

import (
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

var release = sync.OnceValue(func() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
})

// AtLeast tells whether the running kernel is major.minor or later.
func AtLeast(major, minor int) bool { return ReleaseAtLeast(release(), major, minor) }

// ReleaseAtLeast compares a kernel release ("6.1.0-18-amd64") with
// major.minor; a release it cannot read is older.
func ReleaseAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	digits := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 {
		digits = len(parts[1])
	}
	mi, err2 := strconv.Atoi(parts[1][:digits])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
