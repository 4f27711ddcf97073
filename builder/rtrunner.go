package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/berth-dev/berth/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// RuntimeRunner runs RUN steps as containers of berth's runtime, with the
// same defaults as service containers: Docker's capability set, seccomp
// profile, masked paths, device allow-list and a cgroup. It keeps its
// containers in a runtime root of its own so that they never show up among
// a project's containers.
type RuntimeRunner struct {
	RT *runtime.Runtime
}

// Run implements Runner.
func (rr RuntimeRunner) Run(ctx context.Context, p *Process) error {
	spec, err := runSpec(p)
	if err != nil {
		return err
	}
	created, err := prepareMountpoints(p.Rootfs.Path(), p)
	defer removeMountpoints(p.Rootfs.Path(), created)
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(p.Output, pr)
		pr.Close()
		close(copied)
	}()
	null, err := os.Open(os.DevNull)
	if err != nil {
		pw.Close()
		<-copied
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	id := "build-" + hex.EncodeToString(rnd[:])
	_, err = rr.RT.Run(ctx, id, runtime.CreateOptions{Spec: spec, Stdio: []*os.File{null, pw, pw}})
	null.Close()
	pw.Close()
	if err != nil {
		pr.SetReadDeadline(time.Now())
		<-copied
		return fmt.Errorf("start RUN: %w", err)
	}
	defer rr.RT.Delete(context.WithoutCancel(ctx), id, true)
	st, err := rr.RT.Wait(ctx, id)
	// the monitor holds a copy of the pipe's write end for a while: once
	// the step has exited, drain what is buffered and stop waiting for EOF
	pr.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	<-copied
	if err != nil {
		return err
	}
	if st.ExitCode != 0 {
		return &ExitError{Code: st.ExitCode}
	}
	return nil
}

func runSpec(p *Process) (*specs.Spec, error) {
	spec := runtime.DefaultSpec(p.Args)
	spec.Root = &specs.Root{Path: p.Rootfs.Path()}
	spec.Hostname = "buildkitsandbox"
	spec.Process.Env = p.Env
	spec.Process.Cwd = p.Cwd
	spec.Process.User = specs.User{UID: uint32(p.UID), GID: uint32(p.GID)}
	for _, g := range p.Groups {
		spec.Process.User.AdditionalGids = append(spec.Process.User.AdditionalGids, uint32(g))
	}
	spec.Mounts = append(spec.Mounts, p.Mounts...)
	var ns []specs.LinuxNamespace
	for _, n := range spec.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			switch {
			case p.Netns != "":
				n.Path = p.Netns
			case p.Network != "none":
				continue // host network
			}
		}
		ns = append(ns, n)
	}
	spec.Linux.Namespaces = ns
	sc, err := runtime.DefaultSeccomp(spec)
	if err != nil {
		return nil, err
	}
	spec.Linux.Seccomp = sc
	return spec, nil
}
