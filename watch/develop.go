package watch

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
)

// rule is one develop.watch entry of a service, paths resolved.
type rule struct {
	Service string
	Index   int // position in the service's list: the first matching rule wins
	Action  types.WatchAction
	Path    string // absolute host path (directory or file)
	Target  string // absolute path in the container (sync actions)
	Exec    types.ServiceHook
	Initial bool

	include, ignore, dockerignore *matcher
}

// rulesOf reads every service's develop.watch section.
func rulesOf(p *types.Project) ([]*rule, error) {
	var out []*rule
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if s.Develop == nil {
			continue
		}
		var di *matcher
		if s.Build != nil && s.Build.Context != "" {
			var err error
			if di, err = readDockerignore(resolve(p.WorkingDir, s.Build.Context)); err != nil {
				return nil, fmt.Errorf("service %s: .dockerignore: %w", name, err)
			}
		}
		for i, t := range s.Develop.Watch {
			r, err := newRule(p.WorkingDir, name, i, t, di)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func newRule(dir, service string, i int, t types.Trigger, di *matcher) (*rule, error) {
	where := fmt.Sprintf("service %s: develop.watch[%d]", service, i)
	switch t.Action {
	case types.WatchActionSync, types.WatchActionSyncRestart, types.WatchActionSyncExec:
		if t.Target == "" || !path.IsAbs(t.Target) {
			return nil, fmt.Errorf("%s: action %s needs an absolute target", where, t.Action)
		}
	case types.WatchActionRebuild, types.WatchActionRestart:
	default:
		return nil, fmt.Errorf("%s: unknown action %q", where, t.Action)
	}
	if t.Path == "" {
		return nil, fmt.Errorf("%s: path is required", where)
	}
	if t.Action == types.WatchActionSyncExec && len(t.Exec.Command) == 0 {
		return nil, fmt.Errorf("%s: sync+exec needs exec.command", where)
	}
	r := &rule{Service: service, Index: i, Action: t.Action, Path: resolve(dir, t.Path),
		Target: path.Clean(t.Target), Exec: t.Exec, Initial: t.InitialSync, dockerignore: di}
	var err error
	if r.ignore, err = newMatcher(r.Path, t.Ignore); err != nil {
		return nil, fmt.Errorf("%s: ignore: %w", where, err)
	}
	if r.include, err = newMatcher(r.Path, t.Include); err != nil {
		return nil, fmt.Errorf("%s: include: %w", where, err)
	}
	return r, nil
}

func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// matches reports whether the rule wants the changed host path.
func (r *rule) matches(p string) bool {
	if !below(r.Path, p) || r.excluded(p) {
		return false
	}
	if r.include != nil && p != r.Path && !r.include.matches(p) {
		return false
	}
	return true
}

// excluded is true for paths below the rule's that editors, version
// control, ignore or .dockerignore rule out.
func (r *rule) excluded(p string) bool {
	return ignoredBelow(r.Path, p) || r.ignore.matches(p) || r.dockerignore.matches(p)
}

// prunes is true when nothing below dir can match: it is excluded and no
// "!" exception could bring a file below it back.
func (r *rule) prunes(dir string) bool {
	return r.excluded(dir) && !r.ignore.exceptions() && !r.dockerignore.exceptions()
}

// targetOf is where a host path lands in the container.
func (r *rule) targetOf(p string) string {
	rel, err := filepath.Rel(r.Path, p)
	if err != nil || rel == "." {
		return r.Target
	}
	return path.Join(r.Target, filepath.ToSlash(rel))
}

func (r *rule) syncs() bool {
	return r.Action == types.WatchActionSync || r.Action == types.WatchActionSyncRestart || r.Action == types.WatchActionSyncExec
}

// serviceWork is what one batch asks of one service.
type serviceWork struct {
	Service string
	Rebuild bool
	Restart bool
	Sync    map[*rule][]string // host paths per sync rule
	Exec    []*rule            // sync+exec rules that fired
}

// assign maps changed paths to the services' rules: for each service, the
// first rule (in file order) that wants a path takes it. A rebuild
// supersedes everything else for its service: the new container is made
// from the new image and gets every file anyway.
func assign(rules []*rule, paths []string) []*serviceWork {
	by := map[string]*serviceWork{}
	var order []string
	for _, p := range paths {
		taken := map[string]bool{}
		for _, r := range rules {
			if taken[r.Service] || !r.matches(p) {
				continue
			}
			taken[r.Service] = true
			w := by[r.Service]
			if w == nil {
				w = &serviceWork{Service: r.Service, Sync: map[*rule][]string{}}
				by[r.Service] = w
				order = append(order, r.Service)
			}
			switch r.Action {
			case types.WatchActionRebuild:
				w.Rebuild = true
			case types.WatchActionRestart:
				w.Restart = true
			case types.WatchActionSyncRestart:
				w.Restart = true
			case types.WatchActionSyncExec:
				if !slices.Contains(w.Exec, r) {
					w.Exec = append(w.Exec, r)
				}
			}
			if r.syncs() {
				w.Sync[r] = append(w.Sync[r], p)
			}
		}
	}
	slices.Sort(order)
	out := make([]*serviceWork, 0, len(order))
	for _, s := range order {
		w := by[s]
		if w.Rebuild {
			w.Restart, w.Sync, w.Exec = false, nil, nil
		}
		out = append(out, w)
	}
	return out
}
