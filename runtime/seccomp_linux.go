package runtime

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// DefaultSeccomp is Docker's default seccomp profile for spec (whose
// capabilities decide which extra syscalls it allows).
func DefaultSeccomp(spec *specs.Spec) (*specs.LinuxSeccomp, error) {
	return mobyseccomp.GetDefaultProfile(spec)
}

var seccompActions = map[specs.LinuxSeccompAction]libseccomp.ScmpAction{
	specs.ActKill:        libseccomp.ActKillThread,
	specs.ActKillThread:  libseccomp.ActKillThread,
	specs.ActKillProcess: libseccomp.ActKillProcess,
	specs.ActTrap:        libseccomp.ActTrap,
	specs.ActErrno:       libseccomp.ActErrno,
	specs.ActTrace:       libseccomp.ActTrace,
	specs.ActAllow:       libseccomp.ActAllow,
	specs.ActLog:         libseccomp.ActLog,
}

var seccompOps = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

func seccompAction(a specs.LinuxSeccompAction, errno *uint) (libseccomp.ScmpAction, error) {
	act, ok := seccompActions[a]
	if !ok {
		return 0, fmt.Errorf("%w: seccomp action %q not supported", ErrInvalid, a)
	}
	if act == libseccomp.ActErrno || act == libseccomp.ActTrace {
		code := int16(unix.EPERM)
		if errno != nil {
			code = int16(*errno)
		}
		act = act.SetReturnCode(code)
	}
	return act, nil
}

// compiledSeccomp keeps the programs compileSeccomp made, by the digest of
// the profile: libseccomp takes ~30 ms of CPU for Docker's default profile,
// which every container of a project and every exec (healthchecks run one
// each interval) would pay again in the monitor for the same result.
var compiledSeccomp struct {
	sync.Mutex
	progs map[[sha256.Size]byte]*seccompProgram
}

// seccompProgram is one profile's compilation, made once: the creates of
// a burst ask for the same profile at the same moment.
type seccompProgram struct {
	once sync.Once
	prog []unix.SockFilter
	err  error
}

// maxCompiledSeccomp bounds the cache: profiles differ by capabilities and
// by hand-written files, a handful in practice.
const maxCompiledSeccomp = 64

// compileSeccomp turns a spec profile into a classic BPF program. It runs
// in the parent, so the container's init only has to hand the program to
// the kernel right before execve. The program is shared: callers never
// modify it.
func compileSeccomp(s *specs.LinuxSeccomp) ([]unix.SockFilter, error) {
	if s == nil {
		return nil, nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	key := sha256.Sum256(b)
	compiledSeccomp.Lock()
	p, ok := compiledSeccomp.progs[key]
	if !ok {
		if compiledSeccomp.progs == nil || len(compiledSeccomp.progs) >= maxCompiledSeccomp {
			compiledSeccomp.progs = map[[sha256.Size]byte]*seccompProgram{}
		}
		p = &seccompProgram{}
		compiledSeccomp.progs[key] = p
	}
	compiledSeccomp.Unlock()
	p.once.Do(func() { p.prog, p.err = compileSeccompProfile(s) })
	return p.prog, p.err
}

func compileSeccompProfile(s *specs.LinuxSeccomp) ([]unix.SockFilter, error) {
	def, err := seccompAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	// The kernel, not libseccomp, sets no_new_privs where the spec asks.
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return nil, err
	}
	for _, a := range s.Architectures {
		arch, err := libseccomp.GetArchFromString(archName(a))
		if err != nil {
			continue
		}
		if err := f.AddArch(arch); err != nil {
			return nil, err
		}
	}
	for _, sc := range s.Syscalls {
		act, err := seccompAction(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, err
		}
		if act == def {
			continue
		}
		var conds []libseccomp.ScmpCondition
		for _, a := range sc.Args {
			op, ok := seccompOps[a.Op]
			if !ok {
				return nil, fmt.Errorf("%w: seccomp operator %q", ErrInvalid, a.Op)
			}
			var c libseccomp.ScmpCondition
			if op == libseccomp.CompareMaskedEqual {
				c, err = libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
			} else {
				c, err = libseccomp.MakeCondition(a.Index, op, a.Value)
			}
			if err != nil {
				return nil, err
			}
			conds = append(conds, c)
		}
		for _, name := range sc.Names {
			call, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // unknown to this libseccomp/arch: skipped, as runc does
			}
			if err := addRule(f, call, act, conds); err != nil {
				return nil, fmt.Errorf("seccomp rule %s: %w", name, err)
			}
		}
	}
	raw, err := exportBPF(f)
	if err != nil {
		return nil, err
	}
	prog := make([]unix.SockFilter, len(raw)/8)
	for i := range prog {
		b := raw[i*8:]
		prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	return prog, nil
}

// addRule adds conditions the way libseccomp accepts them: several
// conditions on the same argument must be separate rules (OR), others AND.
func addRule(f *libseccomp.ScmpFilter, call libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds []libseccomp.ScmpCondition) error {
	if len(conds) == 0 {
		return f.AddRule(call, act)
	}
	seen := map[uint]bool{}
	sameArg := false
	for _, c := range conds {
		if seen[c.Argument] {
			sameArg = true
		}
		seen[c.Argument] = true
	}
	if !sameArg {
		return f.AddRuleConditional(call, act, conds)
	}
	for _, c := range conds {
		if err := f.AddRuleConditional(call, act, []libseccomp.ScmpCondition{c}); err != nil {
			return err
		}
	}
	return nil
}

func archName(a specs.Arch) string {
	switch a {
	case specs.ArchX86_64:
		return "amd64"
	case specs.ArchX86:
		return "x86"
	case specs.ArchX32:
		return "x32"
	case specs.ArchAARCH64:
		return "arm64"
	case specs.ArchARM:
		return "arm"
	}
	return string(a)
}

// loadSeccomp installs the program on the calling thread, which then execs.
func loadSeccomp(prog []unix.SockFilter) error {
	if len(prog) == 0 {
		return nil
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, 1 /* SECCOMP_SET_MODE_FILTER */, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("load seccomp filter: %w", e)
	}
	return nil
}

// exportBPF goes through a memfd: ExportBPFMem needs libseccomp 2.6,
// Debian 12 ships 2.5.
func exportBPF(f *libseccomp.ScmpFilter) ([]byte, error) {
	fd, err := unix.MemfdCreate("berth-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	mf := os.NewFile(uintptr(fd), "seccomp")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, err
	}
	if _, err := mf.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(mf)
}

// bpfProgram is a compiled seccomp filter as the init's config carries it:
// base64 of its instructions in the kernel's layout (code, jt, jf, k; 8
// bytes, little-endian) instead of encoding/json's one object per
// instruction, which Docker's profile made ~2.3 ms of every init's config
// decode (a few hundred instructions).
type bpfProgram []unix.SockFilter

func (p bpfProgram) MarshalJSON() ([]byte, error) {
	raw := make([]byte, 8*len(p))
	for i, in := range p {
		binary.LittleEndian.PutUint16(raw[8*i:], in.Code)
		raw[8*i+2], raw[8*i+3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(raw[8*i+4:], in.K)
	}
	return json.Marshal(raw)
}

func (p *bpfProgram) UnmarshalJSON(b []byte) error {
	var raw []byte
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw)%8 != 0 {
		return fmt.Errorf("seccomp program of %d bytes, not a multiple of 8", len(raw))
	}
	prog := make(bpfProgram, len(raw)/8)
	for i := range prog {
		prog[i] = unix.SockFilter{
			Code: binary.LittleEndian.Uint16(raw[8*i:]),
			Jt:   raw[8*i+2],
			Jf:   raw[8*i+3],
			K:    binary.LittleEndian.Uint32(raw[8*i+4:]),
		}
	}
	*p = prog
	return nil
}
