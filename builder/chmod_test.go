package builder

import (
	"os"
	"testing"
)

func TestParseChmod(t *testing.T) {
	for _, tc := range []struct {
		spec string
		mode uint32
		dir  bool
		want uint32
	}{
		{"0755", 0o600, false, 0o755},
		{"640", 0o777, true, 0o640},
		{"u+x", 0o644, false, 0o744},
		{"u+x,g-w", 0o664, false, 0o744},
		{"g-w,o-rwx", 0o777, false, 0o750},
		{"a=r", 0o755, false, 0o444},
		{"=rw", 0o7755, false, 0o666},
		{"go=u", 0o750, false, 0o777},
		{"go=u-w", 0o750, false, 0o755},
		{"a+X", 0o644, false, 0o644},
		{"a+X", 0o744, false, 0o755},
		{"a+X", 0o700, true, 0o711},
		{"u+s", 0o755, false, 0o4755},
		{"g+s,o+t", 0o755, true, 0o3755},
		{"u=rwx,g=rx,o=", 0o666, false, 0o750},
		{"+x", 0o600, false, 0o711},
		{"u-s", 0o4755, false, 0o755},
	} {
		f, err := parseChmod(tc.spec)
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		if got := f(tc.mode, tc.dir); got != tc.want {
			t.Errorf("%s on %o (dir %v) = %o, want %o", tc.spec, tc.mode, tc.dir, got, tc.want)
		}
	}
	for _, bad := range []string{"", "u", "u+q", "z+x", "10000", "u+x,", "u*x"} {
		if _, err := parseChmod(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestKeepBuildNetwork(t *testing.T) {
	t.Setenv("BERTH_KEEP_BUILD_NETWORK", "")
	tmp := os.TempDir()
	for root, want := range map[string]bool{"/var/lib/berth": true, tmp + "/x/root": false, tmp: false, tmp + "x/root": true} {
		if got := keepBuildNetwork(root); got != want {
			t.Errorf("%s: keep %v, want %v", root, got, want)
		}
	}
	t.Setenv("BERTH_KEEP_BUILD_NETWORK", "1")
	if !keepBuildNetwork(tmp + "/x") {
		t.Error("BERTH_KEEP_BUILD_NETWORK=1 ignored")
	}
	t.Setenv("BERTH_KEEP_BUILD_NETWORK", "0")
	if keepBuildNetwork("/var/lib/berth") {
		t.Error("BERTH_KEEP_BUILD_NETWORK=0 ignored")
	}
}
