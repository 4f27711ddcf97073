package runtime

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The device allow-list on cgroup v2 is an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup: the
// kernel runs it on every open and mknod of a device node by a process of
// the cgroup, and refuses the access (EPERM) when it returns 0.
//
// Its context is struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
// u32 minor; }, access_type being (access << 16) | type, with type 1 for a
// block and 2 for a character device, access a mask of mknod (1), read (2)
// and write (4).
//
// The spec's rules are v1's devices.allow/devices.deny lines in order: a
// later rule overrides an earlier one, and a cgroup starts with everything
// allowed (a leading "deny a" rule clears that). The program evaluates the
// rules last to first and the first that matches decides:
//   - an allow rule matches when the device matches and it grants every
//     access asked (one that grants only part of them does not decide);
//   - a deny rule matches when the device matches and it names any of the
//     accesses asked.
// When none matches the access is allowed (the v1 default).

const (
	bpfDevBlock = 1
	bpfDevChar  = 2
	bpfAccMknod = 1
	bpfAccRead  = 2
	bpfAccWrite = 4
)

func bpfAccess(s string) (int32, error) {
	if s == "" {
		s = "rwm"
	}
	var a int32
	for _, c := range s {
		switch c {
		case 'r':
			a |= bpfAccRead
		case 'w':
			a |= bpfAccWrite
		case 'm':
			a |= bpfAccMknod
		default:
			return 0, fmt.Errorf("%w: device access %q", ErrInvalid, s)
		}
	}
	return a, nil
}

// deviceFilter compiles the rules to the program's instructions.
func deviceFilter(rules []specs.LinuxDeviceCgroup) (asm.Instructions, error) {
	const (
		rType   = asm.R2
		rAccess = asm.R3
		rMajor  = asm.R4
		rMinor  = asm.R5
		rTmp    = asm.R6
	)
	insns := asm.Instructions{
		asm.LoadMem(rType, asm.R1, 0, asm.Word),
		asm.Mov.Reg32(rAccess, rType),
		asm.RSh.Imm32(rAccess, 16),
		asm.And.Imm32(rType, 0xffff),
		asm.LoadMem(rMajor, asm.R1, 4, asm.Word),
		asm.LoadMem(rMinor, asm.R1, 8, asm.Word),
	}
	label := func(i int) string { return "rule" + strconv.Itoa(i) }
	n := len(rules)
	for k := 0; k < n; k++ {
		r := rules[n-1-k]
		next := label(k + 1)
		if k == n-1 {
			next = "default"
		}
		acc, err := bpfAccess(r.Access)
		if err != nil {
			return nil, err
		}
		var block asm.Instructions
		switch r.Type {
		case "", "a":
		case "c":
			block = append(block, asm.JNE.Imm(rType, bpfDevChar, next))
		case "b":
			block = append(block, asm.JNE.Imm(rType, bpfDevBlock, next))
		default:
			return nil, fmt.Errorf("%w: device cgroup type %q", ErrInvalid, r.Type)
		}
		if r.Major != nil && *r.Major >= 0 {
			block = append(block, asm.JNE.Imm32(rMajor, int32(*r.Major), next))
		}
		if r.Minor != nil && *r.Minor >= 0 {
			block = append(block, asm.JNE.Imm32(rMinor, int32(*r.Minor), next))
		}
		block = append(block, asm.Mov.Reg32(rTmp, rAccess))
		if r.Allow {
			// Every access asked must be granted.
			block = append(block, asm.And.Imm32(rTmp, ^acc&7), asm.JNE.Imm32(rTmp, 0, next))
		} else {
			// Any access asked that the rule names is denied.
			block = append(block, asm.And.Imm32(rTmp, acc), asm.JEq.Imm32(rTmp, 0, next))
		}
		verdict := int32(0)
		if r.Allow {
			verdict = 1
		}
		block = append(block, asm.Mov.Imm32(asm.R0, verdict), asm.Return())
		block[0] = block[0].WithSymbol(label(k))
		insns = append(insns, block...)
	}
	insns = append(insns, asm.Mov.Imm32(asm.R0, 1).WithSymbol("default"), asm.Return())
	return insns, nil
}

// attachDeviceFilter loads the rules' program and attaches it to the v2
// cgroup directory dir. BPF_F_ALLOW_MULTI with BPF_PROG_ATTACH (not a
// bpf_link, which would go with this process's fd): the attachment lives
// as long as the cgroup, so the container stays confined when the monitor
// exits; parents' programs still apply (every one must allow).
func attachDeviceFilter(dir string, rules []specs.LinuxDeviceCgroup) error {
	if len(rules) == 0 {
		return nil
	}
	insns, err := deviceFilter(rules)
	if err != nil {
		return err
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type:         ebpf.CGroupDevice,
		Instructions: insns,
		License:      "Apache",
	}, ebpf.ProgramOptions{})
	if err != nil {
		return fmt.Errorf("device cgroup program: %w", err)
	}
	defer prog.Close()
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("device cgroup program: %w", err)
	}
	defer unix.Close(fd)
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  fd,
		Program: prog,
		Attach:  ebpf.AttachCGroupDevice,
		Flags:   unix.BPF_F_ALLOW_MULTI,
	}); err != nil {
		return fmt.Errorf("attach device cgroup program to %s: %w", dir, err)
	}
	return nil
}

// deviceFilterIDs lists the device programs attached to a v2 cgroup.
func deviceFilterIDs(dir string) ([]ebpf.ProgramID, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	res, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return nil, err
	}
	var ids []ebpf.ProgramID
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids, nil
}

// detachDeviceFilters detaches every device program from a v2 cgroup (the
// kernel would drop them with the directory, but only once the last
// reference to the dying cgroup is gone).
func detachDeviceFilters(dir string) error {
	ids, err := deviceFilterIDs(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var errs []error
	for _, id := range ids {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone already
		}
		errs = append(errs, link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: prog, Attach: ebpf.AttachCGroupDevice}))
		prog.Close()
	}
	return errors.Join(errs...)
}
