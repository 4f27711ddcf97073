package runtime

import (
	"math/rand"
	"regexp"
	"strings"
	"testing"
)

// checkID accepts exactly what the pattern it replaced matched.
func TestCheckIDMatchesPattern(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	cases := []string{"", "a", "A", "0", "_", ".", "-", "a_", "a.", "a-", "a b", "a/b", "é", "a\n",
		strings.Repeat("a", 127), strings.Repeat("a", 128), strings.Repeat("a", 129), "a" + strings.Repeat("-", 127), "-" + strings.Repeat("a", 10)}
	alphabet := "aZ09_.-/ \x00é"
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		n := rng.Intn(12)
		if i%100 == 0 {
			n = 120 + rng.Intn(15)
		}
		var b strings.Builder
		for j := 0; j < n; j++ {
			b.WriteByte(alphabet[rng.Intn(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, c := range cases {
		if got, want := checkID(c) == nil, re.MatchString(c); got != want {
			t.Errorf("checkID(%q) accepts: %v, the pattern: %v", c, got, want)
		}
	}
}
