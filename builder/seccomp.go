package builder

import (
	"fmt"
	"strings"

	"github.com/berth-dev/berth/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// loadRunSeccomp installs Docker's default seccomp profile (for Docker's
// default capabilities, the set RUN keeps) on the calling thread, the one
// that then executes the step. It runs while the process still has
// CAP_SYS_ADMIN, so no_new_privs stays off and setuid programs keep
// working, as in Docker.
func loadRunSeccomp() error {
	prof, err := runtime.DefaultSeccomp(runtime.DefaultSpec(nil))
	if err != nil || prof == nil {
		return err
	}
	def, err := scmpAction(prof.DefaultAction, prof.DefaultErrnoRet)
	if err != nil {
		return err
	}
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return err
	}
	defer f.Release()
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return err
	}
	for _, a := range prof.Architectures {
		name := strings.ToLower(strings.TrimPrefix(string(a), "SCMP_ARCH_"))
		if arch, err := libseccomp.GetArchFromString(name); err == nil {
			f.AddArch(arch) // an arch the kernel lacks is no loss
		}
	}
	for _, sc := range prof.Syscalls {
		act, err := scmpAction(sc.Action, sc.ErrnoRet)
		if err != nil {
			return err
		}
		if act == def {
			continue
		}
		conds, err := scmpConditions(sc.Args)
		if err != nil {
			return err
		}
		for _, name := range sc.Names {
			call, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // unknown to this libseccomp or arch
			}
			if err := addSeccompRule(f, call, act, conds); err != nil {
				return fmt.Errorf("seccomp %s: %w", name, err)
			}
		}
	}
	return f.Load()
}

func scmpAction(a specs.LinuxSeccompAction, errno *uint) (libseccomp.ScmpAction, error) {
	switch a {
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	case specs.ActErrno, specs.ActTrace:
		code := int16(unix.EPERM)
		if errno != nil {
			code = int16(*errno)
		}
		if a == specs.ActTrace {
			return libseccomp.ActTrace.SetReturnCode(code), nil
		}
		return libseccomp.ActErrno.SetReturnCode(code), nil
	}
	return 0, fmt.Errorf("seccomp action %q is not supported", a)
}

var scmpOps = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual: libseccomp.CompareNotEqual, specs.OpLessThan: libseccomp.CompareLess,
	specs.OpLessEqual: libseccomp.CompareLessOrEqual, specs.OpEqualTo: libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual, specs.OpGreaterThan: libseccomp.CompareGreater,
	specs.OpMaskedEqual: libseccomp.CompareMaskedEqual,
}

func scmpConditions(args []specs.LinuxSeccompArg) ([]libseccomp.ScmpCondition, error) {
	var out []libseccomp.ScmpCondition
	for _, a := range args {
		op, ok := scmpOps[a.Op]
		if !ok {
			return nil, fmt.Errorf("seccomp operator %q is not supported", a.Op)
		}
		vals := []uint64{a.Value}
		if op == libseccomp.CompareMaskedEqual {
			vals = append(vals, a.ValueTwo)
		}
		c, err := libseccomp.MakeCondition(a.Index, op, vals...)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// addSeccompRule adds one rule; libseccomp wants conditions on the same
// argument as separate rules (their OR), others together (their AND).
func addSeccompRule(f *libseccomp.ScmpFilter, call libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds []libseccomp.ScmpCondition) error {
	if len(conds) == 0 {
		return f.AddRule(call, act)
	}
	seen := map[uint]bool{}
	for _, c := range conds {
		if seen[c.Argument] {
			for _, c := range conds {
				if err := f.AddRuleConditional(call, act, []libseccomp.ScmpCondition{c}); err != nil {
					return err
				}
			}
			return nil
		}
		seen[c.Argument] = true
	}
	return f.AddRuleConditional(call, act, conds)
}
