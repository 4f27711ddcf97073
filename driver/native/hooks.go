package native

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
)

// Lifecycle hooks (compose's post_start and pre_stop) run inside the
// container through the runtime's exec, as docker runs them.

// postStart runs the container's post_start hooks in order, right after
// its start. A failing hook fails the start, as in compose, and the
// container is stopped (without its pre_stop hooks): left running, a
// level-triggered reconciler would take it as started and never run the
// hook again; stopped, the next start runs it again.
func (d *Driver) postStart(ctx context.Context, r *record) error {
	for i, h := range r.Spec.PostStart {
		if err := d.runHook(ctx, r, h); err != nil {
			err = fmt.Errorf("start %s: post_start hook %d (%s): %w", r.Name, i+1, strings.Join(h.Command, " "), err)
			d.event(r, "hook", err.Error())
			_ = d.StopContainer(context.WithValue(ctx, noPreStop{}, true), r.ID, 2*time.Second)
			return err
		}
	}
	return nil
}

// noPreStop marks the stop of a container whose post_start failed.
type noPreStop struct{}

// preStop runs the container's pre_stop hooks before its stop signal,
// all of them bounded by the stop timeout (a hung hook cannot block a stop
// for ever; the signal then gets its own timeout). Failures are only
// recorded as events: the stop goes on.
func (d *Driver) preStop(ctx context.Context, r *record, timeout time.Duration) {
	if len(r.Spec.PreStop) == 0 || ctx.Value(noPreStop{}) != nil {
		return
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for i, h := range r.Spec.PreStop {
		if err := d.runHook(ctx, r, h); err != nil {
			d.event(r, "hook", fmt.Sprintf("pre_stop hook %d (%s): %v", i+1, strings.Join(h.Command, " "), err))
		}
	}
}

// runHook execs one hook in the running container and fails on a non-zero
// status, quoting the end of its output.
func (d *Driver) runHook(ctx context.Context, r *record, h state.Hook) error {
	p, err := d.hookProcess(r, h)
	if err != nil {
		return err
	}
	out, err := os.CreateTemp(d.containerDir(r.ID), "hook-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	code, err := d.rt.Exec(ctx, r.ID, p, runtime.ExecOptions{User: h.User, Stdio: []*os.File{devnull, out, out}})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("exit status %d%s", code, tail(out, 512))
	}
	return nil
}

// hookProcess is the hook's process: unset fields come from the
// container's own process (the runtime fills them in).
func (d *Driver) hookProcess(r *record, h state.Hook) (*specs.Process, error) {
	p := &specs.Process{Args: h.Command, Cwd: h.WorkingDir}
	if len(p.Args) == 0 {
		return nil, fmt.Errorf("empty hook command")
	}
	if len(h.Env) > 0 {
		// Setting Env replaces the container's: start from it.
		spec, err := runtime.LoadSpec(filepath.Join(d.rt.Root(), r.ID))
		if err != nil {
			return nil, err
		}
		p.Env = mergeEnv(spec.Process.Env, h.Env)
	}
	if h.Privileged {
		all := runtime.AllCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	return p, nil
}

// tail returns ": " and the last n bytes of f's content, or "".
func tail(f *os.File, n int64) string {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil || size == 0 {
		return ""
	}
	off := max(size-n, 0)
	b := make([]byte, size-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return ""
	}
	return ": " + strings.TrimSpace(string(b))
}
