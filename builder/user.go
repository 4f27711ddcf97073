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

// chmodFunc maps a copied object's mode bits (and whether it is a
// directory) to the mode it gets.
type chmodFunc func(mode uint32, dir bool) uint32

// parseChmod reads a --chmod value: octal (0755) or symbolic as chmod(1)
// and Dockerfile 1.14+ accept it (u+x,g-w, a=rX, go=u, ...). Symbolic
// clauses apply to each object's own mode; an absent who is "a" (no umask).
func parseChmod(s string) (chmodFunc, error) {
	if n, err := strconv.ParseUint(s, 8, 32); err == nil {
		if n > 0o7777 {
			return nil, fmt.Errorf("invalid --chmod=%s", s)
		}
		return func(uint32, bool) uint32 { return uint32(n) }, nil
	}
	type op struct {
		who      uint32 // mask of the affected bits
		op       byte
		perm     string // rwxXst
		copyFrom byte   // u, g or o: take the bits of that class
	}
	var ops []op
	for _, clause := range strings.Split(s, ",") {
		i := 0
		var who uint32
		for i < len(clause) && strings.IndexByte("ugoa", clause[i]) >= 0 {
			switch clause[i] {
			case 'u':
				who |= 0o4700
			case 'g':
				who |= 0o2070
			case 'o':
				who |= 0o1007
			case 'a':
				who |= 0o7777
			}
			i++
		}
		if who == 0 {
			who = 0o7777
		}
		if i == len(clause) {
			return nil, fmt.Errorf("invalid --chmod=%s: %q has no operator", s, clause)
		}
		for i < len(clause) {
			o := op{who: who, op: clause[i]}
			if o.op != '+' && o.op != '-' && o.op != '=' {
				return nil, fmt.Errorf("invalid --chmod=%s: unexpected %q in %q", s, clause[i], clause)
			}
			i++
			if i < len(clause) && strings.IndexByte("ugo", clause[i]) >= 0 {
				o.copyFrom = clause[i]
				i++
			} else {
				j := i
				for i < len(clause) && strings.IndexByte("rwxXst", clause[i]) >= 0 {
					i++
				}
				o.perm = clause[j:i]
			}
			ops = append(ops, o)
		}
	}
	return func(mode uint32, dir bool) uint32 {
		mode &= 0o7777
		for _, o := range ops {
			var bits uint32
			switch o.copyFrom {
			case 'u':
				bits = ((mode >> 6) & 7) * 0o111
			case 'g':
				bits = ((mode >> 3) & 7) * 0o111
			case 'o':
				bits = (mode & 7) * 0o111
			}
			for _, c := range o.perm {
				switch c {
				case 'r':
					bits |= 0o444
				case 'w':
					bits |= 0o222
				case 'x':
					bits |= 0o111
				case 'X':
					if dir || mode&0o111 != 0 {
						bits |= 0o111
					}
				case 's':
					bits |= 0o6000
				case 't':
					bits |= 0o1000
				}
			}
			bits &= o.who
			switch o.op {
			case '+':
				mode |= bits
			case '-':
				mode &^= bits
			case '=':
				// = clears the class's bits (its special bit included)
				mode = mode&^o.who | bits
			}
		}
		return mode
	}, nil
}
