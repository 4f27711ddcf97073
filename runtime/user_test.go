package runtime

import (
	"strings"
	"testing"
)

const testPasswd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n# comment\nbad:line\n"
const testGroup = "root:x:0:\napp:x:1000:\nextra:x:2000:app,other\nwheel:x:10:root\n"

func TestLookupUser(t *testing.T) {
	pw, gr := parsePasswd(strings.NewReader(testPasswd)), parseGroup(strings.NewReader(testGroup))
	cases := []struct {
		spec      string
		uid, gid  uint32
		groups    int
		home      string
		wantError bool
	}{
		{"app", 1000, 1000, 1, "/home/app", false},
		{"app:root", 1000, 0, 0, "/home/app", false},
		{"1000", 1000, 1000, 1, "/home/app", false},
		{"4242", 4242, 0, 0, "/", false},
		{"4242:77", 4242, 77, 0, "/", false},
		{"ghost", 0, 0, 0, "", true},
		{"app:ghosts", 0, 0, 0, "", true},
	}
	for _, c := range cases {
		u, home, err := lookupUser(c.spec, pw, gr)
		if (err != nil) != c.wantError {
			t.Errorf("%s: err %v", c.spec, err)
			continue
		}
		if err == nil && (u.UID != c.uid || u.GID != c.gid || len(u.AdditionalGids) != c.groups || home != c.home) {
			t.Errorf("%s: got %+v home %s", c.spec, u, home)
		}
	}
}

// FuzzLookupUser: image files are untrusted input.
func FuzzLookupUser(f *testing.F) {
	f.Add(testPasswd, testGroup, "app")
	f.Add("a:b:c", "::::", "0:0")
	f.Fuzz(func(t *testing.T, passwd, group, spec string) {
		pw, gr := parsePasswd(strings.NewReader(passwd)), parseGroup(strings.NewReader(group))
		lookupUser(spec, pw, gr)
	})
}
