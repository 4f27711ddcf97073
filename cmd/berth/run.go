package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/compose-spec/compose-go/v2/format"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

type runOptions struct {
	rm           bool
	detach       bool
	noDeps       bool
	noTTY        bool
	servicePorts bool
	name         string
	entrypoint   string
	user         string
	workdir      string
	env          []string
	volumes      []string
	publish      []string
	labels       []string
}

func init() {
	register(func() *cobra.Command {
		var o runOptions
		cmd := &cobra.Command{
			Use:   "run [OPTIONS] SERVICE [COMMAND] [ARGS...]",
			Short: "Run a one-off command on a service",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runOneOff(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, args[0], args[1:])
			},
		}
		f := cmd.Flags()
		f.SetInterspersed(false) // flags after SERVICE belong to COMMAND
		f.BoolVar(&o.rm, "rm", false, "Automatically remove the container when it exits")
		f.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print its name")
		f.BoolVar(&o.noDeps, "no-deps", false, "Don't start linked services")
		f.BoolVarP(&o.noTTY, "no-TTY", "T", false, "Disable pseudo-TTY allocation (default: a TTY when stdin is one)")
		f.BoolVarP(&o.servicePorts, "service-ports", "P", false, "Run with the service's ports published")
		f.StringVar(&o.name, "name", "", "Assign a name to the container")
		f.StringVar(&o.entrypoint, "entrypoint", "", "Override the entrypoint of the image")
		f.StringVarP(&o.user, "user", "u", "", "Run as specified username or uid")
		f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
		f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
		f.StringArrayVarP(&o.volumes, "volume", "v", nil, "Bind mount a volume")
		f.StringArrayVarP(&o.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
		f.StringArrayVarP(&o.labels, "label", "l", nil, "Add or override a label")
		f.BoolP("interactive", "i", true, "Keep STDIN open (always on; compose's flag)")
		f.Lookup("interactive").Hidden = true
		// run's -p is --publish, as in compose: the global -p is then only
		// reachable as --project-name here (cobra would panic on the clash).
		f.StringVar(&global.projectName, "project-name", "", "Project name")
		f.Lookup("project-name").Hidden = true
		return cmd
	})
}

// runOneOff is berth run: the service's dependencies are converged first
// (the reconciler with Options.Services), then a one-off container of the
// service is created with the command line's changes and run attached to
// berth's stdio; its exit status is berth's.
func runOneOff(ctx context.Context, stdout, stderr io.Writer, o runOptions, service string, args []string) error {
	want, err := loadDesired(ctx)
	if err != nil {
		return err
	}
	svc, ok := want.Services[service]
	if !ok {
		return fmt.Errorf("no such service: %s", service)
	}
	d, err := nativeDriver(ctx)
	if err != nil {
		return err
	}
	if deps := dependencies(svc); len(deps) > 0 && !o.noDeps {
		if err := converge(ctx, stderr, d, want, reconciler.Options{Services: deps}); err != nil {
			return err
		}
	}
	tty := !o.noTTY && !o.detach && isTerminal(os.Stdin)
	spec, err := o.oneOffSpec(want, svc, args, tty)
	if err != nil {
		return err
	}
	id, err := createOneOff(ctx, d, want, svc, spec)
	if err != nil {
		return err
	}
	if o.detach {
		if err := d.StartContainer(ctx, id); err != nil {
			d.RemoveContainer(context.WithoutCancel(ctx), id)
			return err
		}
		fmt.Fprintln(stdout, spec.Name)
		return nil
	}
	if o.rm {
		defer d.RemoveContainer(context.WithoutCancel(ctx), id)
	}
	return runAttached(ctx, d, id, tty)
}

// dependencies are the services svc's depends_on names.
func dependencies(svc *state.Service) []string {
	var deps []string
	for n := range svc.DependsOn {
		deps = append(deps, n)
	}
	slices.Sort(deps)
	return deps
}

// oneOffSpec is the service's container changed as compose's run changes
// it: no published ports unless asked, no restart policy, a one-off name
// and label.
func (o runOptions) oneOffSpec(want *state.Desired, svc *state.Service, args []string, tty bool) (state.ContainerSpec, error) {
	spec := svc.Replica(1)
	spec.OneOff = true
	spec.Name = firstOf(o.name, fmt.Sprintf("%s-%s-run-%s", want.Project, svc.Name, randomSlug()))
	spec.Labels[state.LabelOneOff] = "True"
	for _, l := range o.labels {
		k, v, _ := strings.Cut(l, "=")
		spec.Labels[k] = v
	}
	spec.Restart = ""
	spec.Tty, spec.StdinOpen = tty, true
	spec.Hostname = ""
	// Like compose's run without --use-aliases, the one-off answers to its
	// own name only: never to the service's name or network aliases.
	nets := make([]state.NetworkAttachment, len(spec.Networks))
	for i, n := range spec.Networks {
		n.Aliases = nil
		nets[i] = n
	}
	spec.Networks = nets
	if !o.servicePorts {
		spec.Ports = nil
	}
	if len(args) > 0 {
		spec.Command = args
	}
	if o.entrypoint != "" {
		spec.Entrypoint = strings.Fields(o.entrypoint)
		if len(args) == 0 {
			spec.Command = []string{} // a new entrypoint drops the image's CMD too
		}
	}
	if o.user != "" {
		spec.User = o.user
	}
	if o.workdir != "" {
		spec.WorkingDir = o.workdir
	}
	spec.Env = overlayEnv(spec.Env, o.env)
	for _, v := range o.volumes {
		m, err := parseRunVolume(want, v)
		if err != nil {
			return spec, err
		}
		spec.Mounts = append(spec.Mounts, m)
	}
	for _, p := range o.publish {
		ports, err := parseRunPort(p)
		if err != nil {
			return spec, err
		}
		spec.Ports = append(spec.Ports, ports...)
	}
	return spec, nil
}

func randomSlug() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// parseRunVolume reads -v SOURCE:TARGET[:ro]: a path is a bind mount
// (relative to the project directory), a name is a volume of the project
// (its full name when the file declares it) or any existing volume.
func parseRunVolume(want *state.Desired, v string) (state.Mount, error) {
	c, err := format.ParseVolume(v)
	if err != nil {
		return state.Mount{}, fmt.Errorf("-v %s: %w", v, err)
	}
	m := state.Mount{Target: c.Target, ReadOnly: c.ReadOnly, Source: c.Source}
	switch c.Type {
	case types.VolumeTypeBind:
		m.Type, m.CreateHostPath = state.MountBind, true
		if !filepath.IsAbs(m.Source) {
			m.Source = filepath.Join(want.WorkingDir, m.Source)
		}
	case types.VolumeTypeVolume:
		m.Type = state.MountVolume
		if vs, ok := want.Volumes[c.Source]; ok {
			m.Source = vs.Name
		}
	default:
		return state.Mount{}, fmt.Errorf("-v %s: unsupported volume type %s", v, c.Type)
	}
	return m, nil
}

func parseRunPort(p string) ([]state.Port, error) {
	cs, err := types.ParsePortConfig(p)
	if err != nil {
		return nil, fmt.Errorf("-p %s: %w", p, err)
	}
	var out []state.Port
	for _, c := range cs {
		host := 0
		if c.Published != "" {
			if host, err = strconv.Atoi(c.Published); err != nil {
				return nil, fmt.Errorf("-p %s: host port %q: %w", p, c.Published, err)
			}
		}
		out = append(out, state.Port{HostIP: c.HostIP, HostPort: host, ContainerPort: int(c.Target), Protocol: firstOf(c.Protocol, "tcp")})
	}
	return out, nil
}

// createOneOff ensures what the container needs (its image, the project
// networks and volumes it uses: up may never have run) under the project
// lock, then creates it.
func createOneOff(ctx context.Context, d *native.Driver, want *state.Desired, svc *state.Service, spec state.ContainerSpec) (string, error) {
	t := &projectTarget{name: want.Project, desired: want, d: d}
	unlock, err := t.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	img := svc.Image
	img.Ref = firstOf(img.Ref, spec.Image)
	ref, err := d.EnsureImage(ctx, img)
	if err != nil {
		return "", err
	}
	spec.ImageDigest = ref.Digest
	for _, a := range spec.Networks {
		for _, n := range want.Networks {
			if n.Name == a.Network && !n.External {
				if err := d.CreateNetwork(ctx, n); err != nil && !errors.Is(err, driver.ErrAlreadyExists) {
					return "", err
				}
			}
		}
	}
	for _, m := range spec.Mounts {
		for _, v := range want.Volumes {
			if m.Type == state.MountVolume && v.Name == m.Source && !v.External {
				if err := d.CreateVolume(ctx, v); err != nil && !errors.Is(err, driver.ErrAlreadyExists) {
					return "", err
				}
			}
		}
	}
	return d.CreateContainer(ctx, spec)
}

// runAttached starts the one-off with berth's stdio (or a new pty) and
// waits for it, forwarding berth's signals; its exit code is berth's.
func runAttached(ctx context.Context, d *native.Driver, id string, wantTTY bool) error {
	sess, err := callerStdio(wantTTY, "")
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := d.StartAttached(ctx, id, sess.stdio); err != nil {
		return err
	}
	sess.started()
	stopSignals := forwardSignals(ctx, d, id)
	code, err := d.WaitExit(context.WithoutCancel(ctx), id)
	stopSignals()
	if err != nil {
		return err
	}
	sess.drain()
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

// forwardSignals passes berth's SIGINT, SIGTERM, SIGHUP and SIGQUIT to
// the container until the returned function is called.
func forwardSignals(ctx context.Context, d *native.Driver, id string) func() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				d.Kill(context.WithoutCancel(ctx), id, s.(syscall.Signal))
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// projectFlagBeforeRun rewrites a global -p NAME written before the run
// command (berth -p demo run -p 80:80 web) to --project-name=NAME: cobra
// parses every flag with the subcommand's flag set, where -p is
// --publish. Other commands' arguments are returned unchanged.
func projectFlagBeforeRun(args []string) []string {
	takesValue := map[string]bool{"-f": true, "--file": true, "--project-name": true, "--project-directory": true,
		"--profile": true, "--env-file": true, "--root": true, "--run-root": true, "--progress": true, "--parallel": true}
	out := append([]string{}, args...)
	for i := 0; i < len(out); i++ {
		a := out[i]
		switch {
		case a == "-p" && i+1 < len(out):
			out[i] = "--project-name=" + out[i+1]
			out = append(out[:i+1], out[i+2:]...)
		case strings.HasPrefix(a, "-p") && !strings.HasPrefix(a, "--"):
			out[i] = "--project-name=" + strings.TrimPrefix(strings.TrimPrefix(a, "-p"), "=")
		case takesValue[a]:
			i++
		case !strings.HasPrefix(a, "-"):
			if a == "run" {
				return out
			}
			return args
		}
	}
	return args
}
