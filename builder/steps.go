package builder

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// workdir sets the working directory and creates it, owned by the current
// USER as buildkit does.
func (r *buildRun) workdir(ctx context.Context, st *stageState, c *instructions.WorkdirCommand) (bool, error) {
	wd := c.Path
	if !path.IsAbs(wd) {
		base := st.img.Config.WorkingDir
		if base == "" {
			base = "/"
		}
		wd = path.Join(base, wd)
	}
	st.img.Config.WorkingDir = path.Clean(wd)
	key := cacheKey(st.key, "WORKDIR", st.img.Config.WorkingDir, st.img.Config.User)
	return r.fsStep(ctx, st, key, c.String(), func(rf Rootfs) error {
		root, err := openRootDir(rf.Path())
		if err != nil {
			return err
		}
		defer root.Close()
		o := copyOptions{uid: -1, gid: -1}
		if st.img.Config.User != "" {
			uid, gid, _, err := resolveUser(root, st.img.Config.User)
			if err != nil {
				return err
			}
			o.uid, o.gid = uid, gid
		}
		d, err := root.mkdirAll(st.img.Config.WorkingDir, o)
		if err != nil {
			return err
		}
		return d.Close()
	})
}

// run executes a RUN instruction through the Runner.
func (r *buildRun) run(ctx context.Context, st *stageState, c *instructions.RunCommand, out *step) (bool, error) {
	args, script, err := runArgs(st.img, c)
	if err != nil {
		return false, err
	}
	network := instructions.GetNetwork(c)
	if network == "" {
		network = r.o.Network
	}
	if network == "" {
		network = "default"
	}
	mounts := instructions.GetMounts(c)
	env := r.runEnv(st, false)
	binds, err := r.bindKeys(ctx, mounts)
	if err != nil {
		return false, err
	}
	key := cacheKey(st.key, "RUN", args, script, env, network, mounts, binds)
	// a step that will run joins its network while its rootfs is prepared
	join := r.startJoin(ctx, network, key, false)
	defer func() { join.release() }()
	return r.fsStep(ctx, st, key, c.String(), func(rf Rootfs) error {
		root, err := openRootDir(rf.Path())
		if err != nil {
			return err
		}
		uid, gid, groups, err := resolveUser(root, st.img.Config.User)
		root.Close()
		if err != nil {
			return err
		}
		ms, menv, release, err := r.runMounts(ctx, st, mounts, script)
		defer release()
		if err != nil {
			return err
		}
		cwd := st.img.Config.WorkingDir
		if cwd == "" {
			cwd = "/"
		}
		penv := r.runEnv(st, true)
		if len(menv) > 0 {
			e := newVars()
			for _, kv := range penv {
				k, v, _ := strings.Cut(kv, "=")
				e.Set(k, v)
			}
			for _, kv := range menv {
				k, v, _ := strings.Cut(kv, "=")
				e.Set(k, v)
			}
			penv = e.List()
		}
		p := &Process{Rootfs: rf, Args: args, Env: penv, Cwd: cwd,
			UID: uid, GID: gid, Groups: groups, Network: network, Mounts: ms, Output: out}
		if join == nil {
			join = r.startJoin(ctx, network, key, true)
		}
		if err := r.joinNetwork(ctx, p, join); err != nil {
			return err
		}
		if err := r.b.runner.Run(ctx, p); err != nil {
			if ee, ok := err.(*ExitError); ok && ee.Tail == "" {
				ee.Tail = out.tail.String()
			}
			return fmt.Errorf("process %q did not complete successfully: %w", strings.Join(args, " "), err)
		}
		return nil
	})
}

// pendingJoin is a network join started ahead of the step that uses it.
type pendingJoin struct {
	done chan struct{}
	rn   *RunNetwork
	rel  func()
	err  error
}

// wait returns the joined network; release (deferred by the step's
// caller) leaves it, whether or not the step used it.
func (j *pendingJoin) wait() (*RunNetwork, error) {
	if j == nil {
		return nil, nil
	}
	<-j.done
	return j.rn, j.err
}

func (j *pendingJoin) release() {
	if j == nil {
		return
	}
	<-j.done
	if j.rel != nil {
		j.rel()
	}
}

// startJoin attaches a RUN --network=default step to the build network in
// the background when the builder has one and the cache does not have the
// step: the namespace, veth and addresses are set up while the step's
// rootfs is prepared.
func (r *buildRun) startJoin(ctx context.Context, network, key string, always bool) *pendingJoin {
	if network != "default" || r.b.net == nil {
		return nil
	}
	if !r.o.NoCache && !always {
		if rec, ok := r.b.cache.get(key); ok && (rec.Layer == nil || r.b.store.HasLayer(ctx, *rec.Layer)) {
			return nil
		}
	}
	j := &pendingJoin{done: make(chan struct{})}
	go func() {
		defer close(j.done)
		j.rn, j.rel, j.err = r.b.net.Join(ctx)
	}()
	return j
}

// joinNetwork gives the step its network: the namespace behind berth's NAT
// that join set up for default (when the builder has a Networker), the
// host's otherwise, and no network for none. The matching resolv.conf and
// hosts are mounted.
func (r *buildRun) joinNetwork(ctx context.Context, p *Process, join *pendingJoin) error {
	resolv, hosts := "/etc/resolv.conf", "/etc/hosts"
	switch {
	case p.Network == "none":
		return nil
	case p.Network == "default" && r.b.net != nil:
		rn, err := join.wait()
		if err != nil {
			return err
		}
		p.Netns, resolv, hosts = rn.NetnsPath, rn.ResolvConf, rn.Hosts
	}
	for dst, src := range map[string]string{"/etc/resolv.conf": resolv, "/etc/hosts": hosts} {
		if src != "" {
			if _, err := os.Stat(src); err == nil {
				p.Mounts = append(p.Mounts, specs.Mount{Type: "bind", Source: src, Destination: dst, Options: []string{"rbind", "ro"}})
			}
		}
	}
	return nil
}

// runArgs builds argv, turning heredocs into what buildkit runs: a single
// heredoc's body is the shell script (or, with a shebang, an executable
// file mounted at /dev/pipes); several are handed to the shell verbatim.
func runArgs(img *Image, c *instructions.RunCommand) ([]string, *instructions.ShellInlineFile, error) {
	args := c.CmdLine
	var script *instructions.ShellInlineFile
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, fmt.Errorf("invalid heredoc RUN: %v", args)
		}
		if hd := parser.MustParseHeredoc(args[0]); hd != nil && len(c.Files) == 1 {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				f := instructions.ShellInlineFile{Name: c.Files[0].Name, Data: data}
				return []string{path.Join("/dev/pipes", f.Name)}, &f, nil
			}
			args = []string{data}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range c.Files {
				b.WriteString("\n" + f.Data + f.Name)
			}
			args = []string{b.String()}
		}
	}
	if c.PrependShell {
		return append(append([]string(nil), shellOf(img)...), strings.Join(args, " ")), script, nil
	}
	return append([]string(nil), args...), script, nil
}

// runEnv is a RUN's environment: ENV, then declared ARGs that ENV does not
// override, then (for the process only, never the cache key) proxy args.
func (r *buildRun) runEnv(st *stageState, withProxy bool) []string {
	env := envVars(st.img)
	for _, k := range st.args.keys {
		if _, ok := env.Get(k); !ok {
			env.Set(k, st.args.vals[k])
		}
	}
	if withProxy {
		for _, k := range sortedKeys(r.o.BuildArgs) {
			if _, ok := env.Get(k); !ok && proxyArgs[k] {
				env.Set(k, r.o.BuildArgs[k])
			}
		}
	}
	return env.List()
}

// runMounts resolves RUN --mount flags to host mounts and the environment
// they add (secrets with env=, SSH_AUTH_SOCK). Cache mounts live under the
// builder root and survive builds; bind mounts come from the context or a
// stage, read-only unless rw is asked (writes are discarded); secrets and
// SSH agent sockets exist only while the step runs.
func (r *buildRun) runMounts(ctx context.Context, st *stageState, ms []*instructions.Mount, script *instructions.ShellInlineFile) ([]specs.Mount, []string, func(), error) {
	var out []specs.Mount
	var env []string
	nssh := 0
	var cleanups []func()
	release := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if script != nil {
		dir, err := os.MkdirTemp("", "berth-heredoc-")
		if err != nil {
			return nil, nil, release, err
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(script.Name)), []byte(script.Data), 0o755); err != nil {
			return nil, nil, release, err
		}
		out = append(out, specs.Mount{Type: "bind", Source: dir, Destination: "/dev/pipes", Options: []string{"rbind", "ro"}})
	}
	for _, m := range ms {
		target := m.Target
		if !path.IsAbs(target) {
			target = path.Join(orRoot(st.img.Config.WorkingDir), target)
		}
		switch m.Type {
		case instructions.MountTypeCache:
			src, unlock, err := r.b.cacheMount(m)
			if err != nil {
				return nil, nil, release, err
			}
			cleanups = append(cleanups, unlock)
			out = append(out, specs.Mount{Type: "bind", Source: src, Destination: target, Options: []string{"rbind", "rw"}})
		case instructions.MountTypeBind:
			src, done, err := r.bindSource(ctx, st, m)
			if err != nil {
				return nil, nil, release, err
			}
			cleanups = append(cleanups, done)
			opt := "ro"
			if !m.ReadOnly {
				opt = "rw"
			}
			out = append(out, specs.Mount{Type: "bind", Source: src, Destination: target, Options: []string{"rbind", opt}})
		case instructions.MountTypeTmpfs:
			opts := []string{"nosuid", "nodev"}
			if m.SizeLimit > 0 {
				opts = append(opts, fmt.Sprintf("size=%d", m.SizeLimit))
			}
			out = append(out, specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: target, Options: opts})
		case instructions.MountTypeSecret, instructions.MountTypeSSH:
			var sm *specs.Mount
			var e string
			var done func()
			var err error
			if m.Type == instructions.MountTypeSecret {
				sm, e, done, err = r.secretMount(m)
			} else {
				sm, e, done, err = r.sshMount(m, nssh)
				nssh++
			}
			cleanups = append(cleanups, done)
			if err != nil {
				return nil, nil, release, err
			}
			if sm != nil {
				if !path.IsAbs(sm.Destination) {
					sm.Destination = path.Join(orRoot(st.img.Config.WorkingDir), sm.Destination)
				}
				out = append(out, *sm)
			}
			if e != "" {
				env = append(env, e)
			}
		default:
			return nil, nil, release, fmt.Errorf("--mount=type=%s is not supported by berth", m.Type)
		}
	}
	return out, env, release, nil
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
