package compose

import (
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/tree"
)

// matchesBySplit is compose-go's own Path.Matches, before berth's patch
// (third_party/compose-go/PATCH.md): the reference the patch must agree with.
func matchesBySplit(p, pattern tree.Path) bool {
	parts, pats := strings.Split(string(p), "."), strings.Split(string(pattern), ".")
	if len(parts) != len(pats) {
		return false
	}
	for i, part := range parts {
		if pats[i] != tree.PathMatchAll && pats[i] != part {
			return false
		}
	}
	return true
}

func TestPathMatchesAsSplit(t *testing.T) {
	paths := []string{"", ".", "..", "services", "services.web", "services.web.ports",
		"services.web.ports.[]", "services..x", "services.web.", ".services", "*", "services.*",
		"a.b.c.d", "a.b.c", "a.*.c", "a.*.*", "*.*", "services.web.ports.[].target"}
	for _, p := range paths {
		for _, pat := range paths {
			want := matchesBySplit(tree.Path(p), tree.Path(pat))
			if got := tree.Path(p).Matches(tree.Path(pat)); got != want {
				t.Errorf("Path(%q).Matches(%q) = %v, compose-go's answer is %v", p, pat, got, want)
			}
		}
	}
}
