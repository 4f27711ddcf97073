package runtime

import (
	"encoding/json"
	"reflect"
	"slices"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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

// The creates of a burst ask for a new profile at the same moment: it is
// compiled once, all get that program.
func TestCompileSeccompOnceInABurst(t *testing.T) {
	sc, err := DefaultSeccomp(DefaultSpec(nil))
	if err != nil {
		t.Fatal(err)
	}
	burst := *sc
	burst.Syscalls = append(slices.Clone(sc.Syscalls), specs.LinuxSyscall{Names: []string{"kexec_file_load"}, Action: specs.ActAllow})
	progs := make([][]unix.SockFilter, 8)
	var wg sync.WaitGroup
	for i := range progs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			progs[i], _ = compileSeccomp(&burst)
		}()
	}
	wg.Wait()
	for i, p := range progs {
		if len(p) == 0 || &p[0] != &progs[0][0] {
			t.Fatalf("creator %d got its own compilation", i)
		}
	}
}

// The init's config carries a compiled filter as base64 of its
// instructions: it must come back instruction for instruction.
func TestBPFProgramJSON(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}, Linux: &specs.Linux{}}
	prof, err := DefaultSeccomp(spec)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := compileSeccomp(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) < 100 {
		t.Fatalf("Docker's profile compiled to %d instructions", len(prog))
	}
	b, err := json.Marshal(initConfig{Seccomp: prog})
	if err != nil {
		t.Fatal(err)
	}
	var back initConfig
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]unix.SockFilter(back.Seccomp), prog) {
		t.Fatal("the filter changed on its way to the init")
	}
	if err := json.Unmarshal([]byte(`{"seccomp":"AAAA"}`), &back); err == nil {
		t.Fatal("a program of 3 bytes was accepted")
	}
}

// The init gets the compiled filter, not the profile; the caller's spec
// keeps its profile.
func TestInitSpecWithoutProfile(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}, Linux: &specs.Linux{MaskedPaths: []string{"/proc/kcore"}}}
	prof, err := DefaultSeccomp(spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Linux.Seccomp = prof
	got := withoutSeccompProfile(spec)
	if got.Linux.Seccomp != nil || len(got.Linux.MaskedPaths) != 1 {
		t.Fatalf("init's spec: seccomp %v, masked %v", got.Linux.Seccomp != nil, got.Linux.MaskedPaths)
	}
	if spec.Linux.Seccomp != prof {
		t.Fatal("the caller's spec lost its profile")
	}
}
