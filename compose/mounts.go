package compose

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/go-units"

	"github.com/berth-dev/berth/state"
)

// mounts converts volumes: and tmpfs:. Bind sources are already absolute
// (the loader resolves paths); named volumes get their full name.
func mounts(p *types.Project, s types.ServiceConfig) ([]state.Mount, error) {
	var out []state.Mount
	for _, v := range s.Volumes {
		m := state.Mount{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeBind:
			m.CreateHostPath = true
			if v.Bind != nil {
				m.Propagation = v.Bind.Propagation
				m.CreateHostPath = bool(v.Bind.CreateHostPath)
			}
		case types.VolumeTypeVolume:
			if v.Source != "" {
				m.Source = p.Volumes[v.Source].Name
				if m.Source == "" {
					m.Source = p.Name + "_" + v.Source
				}
			}
			if v.Volume != nil {
				m.NoCopy = v.Volume.NoCopy
			}
		case types.VolumeTypeTmpfs:
			m.Source = ""
			if v.Tmpfs != nil {
				m.TmpfsSize = int64(v.Tmpfs.Size)
				m.TmpfsMode = v.Tmpfs.Mode
			}
		default:
			return nil, fmt.Errorf("volumes: type %q is not supported", v.Type)
		}
		out = append(out, m)
	}
	for _, t := range s.Tmpfs {
		m, err := tmpfs(t)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// tmpfs parses the short syntax "/path[:size=64m,mode=1777]".
func tmpfs(spec string) (state.Mount, error) {
	target, opts, _ := strings.Cut(spec, ":")
	m := state.Mount{Type: state.MountTmpfs, Target: path.Clean(target)}
	if opts == "" {
		return m, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "size":
			n, err := units.RAMInBytes(v)
			if err != nil {
				return m, fmt.Errorf("tmpfs %q: size: %w", spec, err)
			}
			m.TmpfsSize = n
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("tmpfs %q: mode: %w", spec, err)
			}
			m.TmpfsMode = uint32(n)
		case "ro":
			m.ReadOnly = true
		}
	}
	return m, nil
}

// files materialises configs and secrets. The content travels with the
// spec for inline and environment sources; file sources stay paths.
func files(p *types.Project, s types.ServiceConfig) ([]state.File, error) {
	var out []state.File
	for _, c := range s.Configs {
		def, ok := p.Configs[c.Source]
		if !ok {
			return nil, fmt.Errorf("config %q is not defined", c.Source)
		}
		f := fileRef("config", types.FileReferenceConfig(c), types.FileObjectConfig(def), p.Environment)
		f.Target = fileTarget(c.Target, c.Source, "/")
		out = append(out, f)
	}
	for _, sc := range s.Secrets {
		def, ok := p.Secrets[sc.Source]
		if !ok {
			return nil, fmt.Errorf("secret %q is not defined", sc.Source)
		}
		f := fileRef("secret", types.FileReferenceConfig(sc), types.FileObjectConfig(def), p.Environment)
		f.Target = fileTarget(sc.Target, sc.Source, "/run/secrets/")
		out = append(out, f)
	}
	return out, nil
}

func fileRef(kind string, ref types.FileReferenceConfig, def types.FileObjectConfig, env types.Mapping) state.File {
	f := state.File{Kind: kind, Name: ref.Source, Source: def.File, UID: ref.UID, GID: ref.GID, Mode: 0o444}
	switch {
	case def.Content != "":
		f.Content = []byte(def.Content)
	case def.Environment != "":
		f.Content = []byte(env[def.Environment])
	}
	if ref.Mode != nil {
		f.Mode = uint32(*ref.Mode)
	}
	return f
}

// fileTarget applies compose's defaults: configs land at /<name>, secrets
// at /run/secrets/<name>; a relative target is taken from that directory.
func fileTarget(target, name, dir string) string {
	if target == "" {
		return dir + name
	}
	if path.IsAbs(target) {
		return target
	}
	return dir + target
}
