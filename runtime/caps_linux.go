package runtime

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var capNames = map[string]int{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
	"CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
	"CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
	"CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
	"CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
	"CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
	"CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36,
	"CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}

// DefaultCapabilities is Docker's default capability set.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// AllCapabilities lists every capability this process holds (privileged):
// a capability the runtime lacks (here CAP_SYS_RESOURCE) cannot be given.
func AllCapabilities() []string {
	last := lastCap()
	held := ownPermitted()
	var out []string
	for name, n := range capNames {
		if n <= last && held&(1<<uint(n)) != 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func ownPermitted() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ^uint64(0)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapPrm:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err == nil {
				return n
			}
		}
	}
	return ^uint64(0)
}

var lastCapOnce struct {
	sync.Once
	n int
}

// lastCap is the kernel's highest capability number (read once: loops
// over capabilities ask it on every turn).
func lastCap() int {
	lastCapOnce.Do(func() { lastCapOnce.n = readLastCap() })
	return lastCapOnce.n
}

func readLastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 40
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 40
	}
	return n
}

// capMask turns names into a bit mask; unknown names are an error, as the
// issue asks (a typo must not silently grant or drop nothing).
func capMask(names []string) (uint64, error) {
	var m uint64
	last := lastCap()
	for _, n := range names {
		c, ok := capNames[strings.ToUpper(n)]
		if !ok {
			return 0, fmt.Errorf("%w: unknown capability %q", ErrInvalid, n)
		}
		if c > last {
			continue // known to us, not to this kernel: runc skips these too
		}
		m |= 1 << uint(c)
	}
	return m, nil
}

// ValidateCapabilities rejects unknown capability names in every set.
func ValidateCapabilities(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
		if _, err := capMask(set); err != nil {
			return err
		}
	}
	return nil
}

func dropBounding(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	keep, err := capMask(c.Bounding)
	if err != nil {
		return err
	}
	for i := 0; i <= lastCap(); i++ {
		if keep&(1<<uint(i)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop bounding capability %d: %w", i, err)
		}
	}
	return nil
}

func applyCaps(c *specs.LinuxCapabilities) error {
	if c == nil {
		c = &specs.LinuxCapabilities{}
	}
	// What this process does not hold it cannot grant (here, root lacks
	// CAP_SYS_RESOURCE): say which, rather than capset's bare EPERM.
	// Privileged (AllCapabilities) only asks for what is held.
	held := ownPermitted()
	var masks [4]uint64
	for i, set := range [][]string{c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
		m, err := capMask(set)
		if err != nil {
			return err
		}
		if missing := m &^ held; missing != 0 && i < 2 {
			for name, n := range capNames {
				if missing&(1<<uint(n)) != 0 {
					return fmt.Errorf("capability %s is not held by the runtime and cannot be granted", name)
				}
			}
		}
		masks[i] = m & held
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(masks[0]), Permitted: uint32(masks[1]), Inheritable: uint32(masks[2])},
		{Effective: uint32(masks[0] >> 32), Permitted: uint32(masks[1] >> 32), Inheritable: uint32(masks[2] >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for i := 0; i <= lastCap(); i++ {
		if masks[3]&(1<<uint(i)) == 0 {
			continue
		}
		// The kernel only raises an ambient capability that is also
		// permitted and inheritable; like runc, others are skipped.
		if masks[1]&masks[2]&(1<<uint(i)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d: %w", i, err)
		}
	}
	return nil
}
