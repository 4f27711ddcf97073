package compose

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berth-dev/berth/state"
)

func service(p *types.Project, s types.ServiceConfig) (*state.Service, error) {
	c, err := container(p, s)
	if err != nil {
		return nil, err
	}
	hash, err := ConfigHash(p, s)
	if err != nil {
		return nil, err
	}
	if err := contextCycle(p, s.Name, nil); err != nil {
		return nil, err
	}
	svc := &state.Service{
		Name:       s.Name,
		Replicas:   s.GetScale(),
		Image:      image(p, s),
		DependsOn:  dependsOn(s.DependsOn),
		Container:  c,
		ConfigHash: hash,
		Update:     updateConfig(nil),
		Rollback:   updateConfig(nil),
	}
	if s.Deploy != nil {
		svc.Update = updateConfig(s.Deploy.UpdateConfig)
		svc.Rollback = updateConfig(s.Deploy.RollbackConfig)
	}
	if len(s.Extensions) > 0 {
		svc.Extensions = map[string]any(s.Extensions)
	}
	svc.Container.NoHealthRestart = !berthExtension(s, "restart-on-unhealthy", true)
	return svc, nil
}

// berthExtension reads a boolean of the service's x-berth extension, the
// place for what berth does beyond compose.
func berthExtension(s types.ServiceConfig, key string, def bool) bool {
	x, ok := s.Extensions["x-berth"].(map[string]any)
	if !ok {
		return def
	}
	if v, ok := x[key].(bool); ok {
		return v
	}
	return def
}

// ImageName is the image a service runs: its image:, else compose's
// default name for the image built from build:.
func ImageName(project string, s types.ServiceConfig) string {
	if s.Image != "" {
		return s.Image
	}
	return project + "-" + s.Name
}

func image(p *types.Project, s types.ServiceConfig) state.ImageSpec {
	return imageOf(p, s, map[string]bool{})
}

// contextCycle refuses services whose build needs, through service:NAME
// additional contexts, its own image: neither could be built first.
func contextCycle(p *types.Project, name string, path []string) error {
	for i, n := range path {
		if n == name {
			return fmt.Errorf("additional_contexts form a cycle: %s", strings.Join(append(path[i:], name), " → "))
		}
	}
	s, ok := p.Services[name]
	if !ok || s.Build == nil {
		return nil
	}
	for _, c := range s.Build.AdditionalContexts {
		if next, ok := strings.CutPrefix(c, "service:"); ok {
			if err := contextCycle(p, next, append(path, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// imageOf is image with the services already being described (a cycle of
// service: contexts stops there; the builder reports it).
func imageOf(p *types.Project, s types.ServiceConfig, seen map[string]bool) state.ImageSpec {
	seen[s.Name] = true
	defer delete(seen, s.Name)
	img := state.ImageSpec{
		Ref:        ImageName(p.Name, s),
		PullPolicy: s.PullPolicy,
		Platform:   s.Platform,
	}
	if b := s.Build; b != nil {
		img.Build = &state.BuildSpec{
			Context:            b.Context,
			Dockerfile:         b.Dockerfile,
			DockerfileInline:   b.DockerfileInline,
			Args:               resolvedMapping(b.Args),
			Target:             b.Target,
			Tags:               slices.Clone([]string(b.Tags)),
			Labels:             cloneMap(b.Labels),
			AdditionalContexts: cloneMap(b.AdditionalContexts),
			NoCache:            b.NoCache,
			Pull:               b.Pull,
			Network:            b.Network,
		}
		for _, sc := range b.Secrets {
			id := sc.Target
			if id == "" {
				id = sc.Source
			}
			def := p.Secrets[sc.Source]
			bs := state.BuildSecret{File: def.File}
			switch {
			case def.Content != "":
				bs.Value = def.Content
			case def.Environment != "":
				bs.Value = p.Environment[def.Environment]
			}
			if img.Build.Secrets == nil {
				img.Build.Secrets = map[string]state.BuildSecret{}
			}
			img.Build.Secrets[id] = bs
		}
		for _, c := range b.AdditionalContexts {
			name, ok := strings.CutPrefix(c, "service:")
			other, found := p.Services[name]
			if !ok || !found || seen[name] {
				continue
			}
			if img.Build.ServiceContexts == nil {
				img.Build.ServiceContexts = map[string]state.ImageSpec{}
			}
			img.Build.ServiceContexts[name] = imageOf(p, other, seen)
		}
		for _, k := range b.SSH {
			if img.Build.SSH == nil {
				img.Build.SSH = map[string][]string{}
			}
			if k.Path != "" {
				img.Build.SSH[k.ID] = append(img.Build.SSH[k.ID], k.Path)
			} else if _, ok := img.Build.SSH[k.ID]; !ok {
				img.Build.SSH[k.ID] = nil
			}
		}
	}
	return img
}

func dependsOn(deps types.DependsOnConfig) map[string]state.Dependency {
	if len(deps) == 0 {
		return nil
	}
	out := make(map[string]state.Dependency, len(deps))
	for name, d := range deps {
		cond := d.Condition
		if cond == "" {
			cond = state.ConditionStarted
		}
		out[name] = state.Dependency{Condition: cond, Required: d.Required, Restart: d.Restart}
	}
	return out
}

func updateConfig(u *types.UpdateConfig) state.UpdateConfig {
	out := state.UpdateConfig{Order: state.OrderStopFirst}
	if u == nil {
		return out
	}
	if u.Order != "" {
		out.Order = u.Order
	}
	if u.Parallelism != nil {
		out.Parallelism = int(*u.Parallelism)
	}
	out.Delay = time.Duration(u.Delay)
	out.Monitor = time.Duration(u.Monitor)
	out.FailureAction = u.FailureAction
	return out
}

// resolvedMapping keeps the variables that have a value, as compose passes
// them; a bare KEY with nothing in the environment is dropped.
func resolvedMapping(m types.MappingWithEquals) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// envList renders a mapping as sorted KEY=VALUE entries.
func envList(m types.MappingWithEquals) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	slices.Sort(out)
	return out
}

func restartPolicy(s types.ServiceConfig) string {
	if s.Restart != "" || s.Deploy == nil || s.Deploy.RestartPolicy == nil {
		return s.Restart
	}
	// compose maps the swarm restart policy onto the engine's
	rp := s.Deploy.RestartPolicy
	switch rp.Condition {
	case "none":
		return "no"
	case "on-failure":
		if rp.MaxAttempts != nil {
			return "on-failure:" + itoa(int64(*rp.MaxAttempts))
		}
		return "on-failure"
	case "any", "":
		return "always"
	}
	return strings.ToLower(rp.Condition)
}
