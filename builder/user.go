package builder

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveUser turns "user[:group]" into ids using the image's /etc/passwd
// and /etc/group, read inside the rootfs. A numeric user that the image
// does not know is allowed, as in Docker; a missing name is an error.
func resolveUser(root *rootDir, spec string) (uid, gid int, groups []int, err error) {
	if spec == "" {
		spec = "0"
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	passwd := readDB(root, "/etc/passwd")
	uid, gid = -1, -1
	for _, f := range passwd {
		if len(f) >= 4 && (f[0] == user || f[2] == user) {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			user = f[0]
			break
		}
	}
	if uid < 0 {
		n, perr := strconv.Atoi(user)
		if perr != nil || n < 0 {
			return 0, 0, nil, fmt.Errorf("unable to find user %s: no matching entries in passwd file", user)
		}
		uid, gid = n, n
		if !hasGroup {
			gid = 0
		}
	}
	groupDB := readDB(root, "/etc/group")
	if hasGroup {
		gid = -1
		for _, f := range groupDB {
			if len(f) >= 3 && (f[0] == group || f[2] == group) {
				gid, _ = strconv.Atoi(f[2])
				break
			}
		}
		if gid < 0 {
			n, perr := strconv.Atoi(group)
			if perr != nil || n < 0 {
				return 0, 0, nil, fmt.Errorf("unable to find group %s: no matching entries in group file", group)
			}
			gid = n
		}
		return uid, gid, nil, nil
	}
	for _, f := range groupDB {
		if len(f) < 4 {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == user {
				if g, err := strconv.Atoi(f[2]); err == nil && g != gid {
					groups = append(groups, g)
				}
			}
		}
	}
	return uid, gid, groups, nil
}

// readDB reads a colon-separated database inside the rootfs; a missing
// file is an empty database.
func readDB(root *rootDir, name string) [][]string {
	if root == nil {
		return nil
	}
	f, err := root.openIn(name, unix.O_RDONLY)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(io.LimitReader(f, 4<<20))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

// parseChmod reads a --chmod value; berth accepts the octal form.
func parseChmod(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("invalid --chmod=%s: only octal modes are supported", s)
	}
	return uint32(n), nil
}
