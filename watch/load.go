package watch

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/state"
)

// loaded is one valid load of the project: what to converge to, which
// files it came from and the develop.watch rules.
type loaded struct {
	desired       *state.Desired
	inputs        []string
	rules         []*rule
	unimplemented []string
}

// load reads the project from its files. The cache of compose.LoadDesired
// is not used: a watch reloads only when an input changed, and the cache
// would not tell which files to watch.
func load(ctx context.Context, o compose.Options, adjust func(*state.Desired) error) (*loaded, error) {
	p, err := compose.Load(ctx, o)
	if err != nil {
		return nil, err
	}
	d, err := p.Desired()
	if err != nil {
		return nil, err
	}
	if adjust != nil {
		if err := adjust(d); err != nil {
			return nil, err
		}
	}
	rules, err := rulesOf(p.Project)
	if err != nil {
		return nil, err
	}
	inputs := slices.Clone(p.Inputs)
	// a build context's .dockerignore decides what develop.watch syncs
	for _, s := range p.Services {
		if s.Develop != nil && s.Build != nil && s.Build.Context != "" {
			inputs = append(inputs, filepath.Join(resolve(p.WorkingDir, s.Build.Context), ".dockerignore"))
		}
	}
	return &loaded{desired: d, inputs: inputs, rules: rules, unimplemented: p.Unimplemented}, nil
}

// changedServices names the services whose desired state differs between
// two loads, for the line that announces a reload.
func changedServices(old, new *state.Desired) (added, removed, changed []string) {
	for _, n := range new.ServiceNames() {
		o, ok := old.Services[n]
		switch {
		case !ok:
			added = append(added, n)
		case o.ConfigHash != new.Services[n].ConfigHash || o.Replicas != new.Services[n].Replicas ||
			o.Image.Ref != new.Services[n].Image.Ref:
			changed = append(changed, n)
		}
	}
	for _, n := range old.ServiceNames() {
		if _, ok := new.Services[n]; !ok {
			removed = append(removed, n)
		}
	}
	return added, removed, changed
}

func describeChange(old, new *state.Desired) string {
	a, r, c := changedServices(old, new)
	var s string
	add := func(label string, names []string) {
		if len(names) == 0 {
			return
		}
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("%s %v", label, names)
	}
	add("added", a)
	add("removed", r)
	add("changed", c)
	if s == "" {
		return "no service changed"
	}
	return s
}
