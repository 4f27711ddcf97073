package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The local driver's options, as Docker's: type, o and device.
func checkOpts(opts map[string]string) error {
	for k := range opts {
		switch k {
		case "type", "o", "device":
		default:
			return fmt.Errorf("driver_opts: unknown option %q (local driver takes type, o, device)", k)
		}
	}
	if len(opts) > 0 && opts["device"] == "" && opts["type"] != "tmpfs" {
		return fmt.Errorf("driver_opts: device is required with type %q", opts["type"])
	}
	return nil
}

// Path returns the host directory to bind into containers, mounting the
// volume's device first when driver_opts ask for one and it is not mounted
// yet (after a reboot the mount is gone, the metadata is not).
func (m *Manager) Path(ctx context.Context, name string) (string, error) {
	v, err := m.Inspect(ctx, name)
	if err != nil {
		return "", err
	}
	if len(v.DriverOpts) == 0 {
		return v.Mountpoint, nil
	}
	mounted, err := isMountpoint(v.Mountpoint)
	if err != nil {
		return "", err
	}
	if !mounted {
		if err := mountOpts(v.DriverOpts, v.Mountpoint); err != nil {
			return "", fmt.Errorf("volume %s: %w", name, err)
		}
	}
	return v.Mountpoint, nil
}

func mountOpts(opts map[string]string, target string) error {
	var flags uintptr
	var data []string
	for _, o := range strings.Split(opts["o"], ",") {
		switch o {
		case "":
		case "bind":
			flags |= unix.MS_BIND
		case "rbind":
			flags |= unix.MS_BIND | unix.MS_REC
		case "ro":
			flags |= unix.MS_RDONLY
		default:
			data = append(data, o)
		}
	}
	fstype, device := opts["type"], opts["device"]
	if fstype == "none" {
		fstype = ""
	}
	if flags&unix.MS_BIND != 0 {
		real, err := filepath.EvalSymlinks(device)
		if err != nil {
			return fmt.Errorf("bind device: %w", err)
		}
		device = real
	}
	if fstype == "tmpfs" && device == "" {
		device = "tmpfs"
	}
	if err := unix.Mount(device, target, fstype, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s on %s (type %q, o %q): %w", device, target, opts["type"], opts["o"], err)
	}
	return nil
}

// isMountpoint compares the device of a directory with its parent's, and
// falls back to mountinfo for bind mounts of the same filesystem.
func isMountpoint(path string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == path {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ResolveBind turns a bind-mount source into the real host path to mount:
// absolute, symlinks resolved once here so that the runtime mounts exactly
// what was checked. A missing source is created as a directory when create is
// set (compose's default for the short syntax), refusing to create through a
// dangling symlink, which would make a directory wherever the link points.
func ResolveBind(source string, create bool) (string, error) {
	if !filepath.IsAbs(source) {
		return "", fmt.Errorf("bind source %q is not absolute", source)
	}
	real, err := filepath.EvalSymlinks(source)
	if err == nil {
		return real, nil
	}
	if !os.IsNotExist(err) || !create {
		return "", fmt.Errorf("bind source %s: %w", source, err)
	}
	if fi, lerr := os.Lstat(source); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
		return "", fmt.Errorf("bind source %s is a dangling symlink", source)
	}
	parent, err := ResolveBind(filepath.Dir(source), true)
	if err != nil {
		return "", err
	}
	p := filepath.Join(parent, filepath.Base(source))
	if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("bind source %s: %w", source, err)
	}
	return filepath.EvalSymlinks(p)
}
