package compose

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

// The environment a load depends on is split in two, so that variables
// no compose file mentions (a terminal's, a CI runner's, hyperfine's
// HYPERFINE_ITERATION) do not defeat the cache:
//
//   - keyEnv: variables compose or berth read by name whatever the files
//     say (COMPOSE_FILE, COMPOSE_PROFILES, HOME for ~ ...), part of the key;
//   - envDeps: every other variable whose name appears as a token in an
//     input file, with its value at load time. Interpolation ($NAME,
//     ${NAME...}) and pass-through (environment: [NAME], secrets'
//     environment: NAME) can only name a variable by writing it, so any
//     variable that is not a token cannot have influenced the load.

var keyEnvPrefixes = []string{"COMPOSE_", "DOCKER_", "BERTH_"}

var keyEnvNames = []string{"HOME", "PWD"}

func isKeyEnv(name string) bool {
	if slices.Contains(keyEnvNames, name) {
		return true
	}
	for _, p := range keyEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func keyEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if isKeyEnv(name) {
			out = append(out, kv)
		}
	}
	sort.Strings(out)
	return out
}

// Two tokenisations: identifiers (what interpolation can name) and YAML
// words (what a bare environment entry can name, dots and dashes
// included). Their union is a superset of the referable names.
// Compiled on first use, not in every berth process's init.
var tokenPatterns = sync.OnceValue(func() []*regexp.Regexp {
	return []*regexp.Regexp{
		regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`),
		regexp.MustCompile("[^\\s:=,\\[\\]{}\"'#&*!|>%@`$-][^\\s:=,\\[\\]{}\"'#&*!|>%@`$]*"),
	}
})

func addTokens(tokens map[string]bool, content []byte) {
	for _, re := range tokenPatterns() {
		for _, t := range re.FindAll(content, -1) {
			tokens[string(t)] = true
		}
	}
}

// envDeps records the variables an entry depends on: the tokens of its
// inputs and, for those set at load time, their values.
type envDeps struct {
	Tokens []string          // sorted
	Values map[string]string // token → value, for tokens that were set
}

func newEnvDeps(tokens map[string]bool, environ []string) envDeps {
	d := envDeps{Values: map[string]string{}}
	for t := range tokens {
		d.Tokens = append(d.Tokens, t)
	}
	sort.Strings(d.Tokens)
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !isKeyEnv(name) && d.has(name) {
			d.Values[name] = value
		}
	}
	return d
}

func (d envDeps) has(name string) bool {
	_, found := slices.BinarySearch(d.Tokens, name)
	return found
}

// valid reports whether every token variable has the value (or absence)
// it had when the entry was written.
func (d envDeps) valid(environ []string) bool {
	matched := 0
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if isKeyEnv(name) || !d.has(name) {
			continue
		}
		old, ok := d.Values[name]
		if !ok || old != value {
			return false
		}
		matched++
	}
	return matched == len(d.Values)
}
