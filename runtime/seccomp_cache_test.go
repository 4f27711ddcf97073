package runtime

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The monitor compiles a profile once: the same profile gives the very
// program compiled before, another profile its own.
func TestCompileSeccompCached(t *testing.T) {
	sc, err := DefaultSeccomp(DefaultSpec(nil))
	if err != nil {
		t.Fatal(err)
	}
	a, err := compileSeccomp(sc)
	if err != nil || len(a) == 0 {
		t.Fatalf("compile: %d instructions, %v", len(a), err)
	}
	same := *sc // an equal profile in another value
	b, err := compileSeccomp(&same)
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Errorf("an equal profile was compiled again")
	}
	other := *sc
	other.Syscalls = slices.Clone(sc.Syscalls)
	other.Syscalls = append(other.Syscalls, specs.LinuxSyscall{Names: []string{"kexec_load"}, Action: specs.ActAllow})
	c, err := compileSeccomp(&other)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(a, c) {
		t.Errorf("a different profile got the cached program")
	}
}
