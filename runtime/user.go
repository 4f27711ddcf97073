package runtime

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

func parsePasswd(r io.Reader) []passwdEntry {
	var out []passwdEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]})
	}
	return out
}

func parseGroup(r io.Reader) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		out = append(out, groupEntry{name: f[0], gid: uint32(gid), members: members})
	}
	return out
}

// lookupUser resolves "user[:group]" (names or numbers) the way Docker
// does: a numeric user need not exist; a name must; the primary group
// comes from passwd unless given; supplementary groups from group.
func lookupUser(spec string, passwd []passwdEntry, groups []groupEntry) (specs.User, string, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var u specs.User
	home := "/"
	var name string
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		u.UID = uint32(n)
		for _, p := range passwd {
			if p.uid == u.UID {
				u.GID, home, name = p.gid, p.home, p.name
				break
			}
		}
	} else {
		found := false
		for _, p := range passwd {
			if p.name == userPart {
				u.UID, u.GID, home, name, found = p.uid, p.gid, p.home, p.name, true
				break
			}
		}
		if !found {
			return u, "", fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
		}
	}
	if hasGroup && groupPart != "" {
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			u.GID = uint32(n)
		} else {
			found := false
			for _, g := range groups {
				if g.name == groupPart {
					u.GID, found = g.gid, true
					break
				}
			}
			if !found {
				return u, "", fmt.Errorf("unable to find group %s: no matching entries in group file", groupPart)
			}
		}
	}
	if name != "" && !hasGroup {
		for _, g := range groups {
			for _, m := range g.members {
				if m == name && g.gid != u.GID {
					u.AdditionalGids = append(u.AdditionalGids, g.gid)
				}
			}
		}
	}
	return u, home, nil
}

// resolveUser runs inside the container (after pivot_root) so that the
// image's own /etc/passwd and /etc/group decide.
func resolveUser(p *specs.Process, spec string) error {
	if spec == "" {
		return nil
	}
	var passwd []passwdEntry
	var groups []groupEntry
	if f, err := os.Open("/etc/passwd"); err == nil {
		passwd = parsePasswd(f)
		f.Close()
	}
	if f, err := os.Open("/etc/group"); err == nil {
		groups = parseGroup(f)
		f.Close()
	}
	u, home, err := lookupUser(spec, passwd, groups)
	if err != nil {
		return err
	}
	u.Umask = p.User.Umask
	u.AdditionalGids = append(u.AdditionalGids, p.User.AdditionalGids...)
	p.User = u
	for _, e := range p.Env {
		if strings.HasPrefix(e, "HOME=") {
			return nil
		}
	}
	p.Env = append(p.Env, "HOME="+home)
	return nil
}
