package compose

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// recorder collects the paths a load depends on. It errs on the side of
// too many: a path recorded needlessly only costs a stat on a cache hit,
// a path missed serves a stale project.
type recorder struct {
	paths map[string]bool
}

func (r *recorder) add(paths ...string) {
	if r.paths == nil {
		r.paths = map[string]bool{}
	}
	for _, p := range paths {
		if p != "" && p != "-" && p != "/dev/null" {
			r.paths[filepath.Clean(p)] = true
		}
	}
}

func (r *recorder) sorted() []string {
	out := make([]string, 0, len(r.paths))
	for p := range r.paths {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// dotEnvCandidate records the default .env compose would look for next,
// whether it exists or not.
func (r *recorder) dotEnvCandidate() cli.ProjectOptionsFn {
	return func(o *cli.ProjectOptions) error {
		if wd, err := o.GetWorkingDir(); err == nil {
			r.add(filepath.Join(wd, ".env"))
		}
		return nil
	}
}

// references records what the loaded project read besides the top-level
// files: include and extends targets (recursively, from the raw files,
// because compose-go does not report nested ones), their env files, and
// the services' env_file, label_file, configs and secrets.
func (r *recorder) references(files []string, p *types.Project) {
	seen := map[string]bool{}
	for _, f := range files {
		if f != "-" {
			r.walkFile(f, p.WorkingDir, p.Environment, seen)
		}
	}
	for _, s := range p.Services {
		for _, e := range s.EnvFiles {
			r.add(e.Path)
		}
		r.add(s.LabelFiles...)
	}
	for _, c := range p.Configs {
		r.add(c.File)
	}
	for _, s := range p.Secrets {
		r.add(s.File)
	}
}

// refFile is the part of a compose file that names other files.
type refFile struct {
	Include  []any `yaml:"include"`
	Services map[string]struct {
		Extends any `yaml:"extends"`
	} `yaml:"services"`
}

func (r *recorder) walkFile(path, projectDir string, env types.Mapping, seen map[string]bool) {
	if seen[path] {
		return
	}
	seen[path] = true
	r.add(path)
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var f refFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for dec.Decode(&f) == nil {
		dir := filepath.Dir(path)
		for _, inc := range f.Include {
			r.include(inc, dir, projectDir, env, seen)
		}
		for _, s := range f.Services {
			if m, ok := s.Extends.(map[string]any); ok {
				if file, ok := m["file"].(string); ok {
					// extends files are relative to the file that names them
					r.walkFile(resolveIn(dir, interpolate(file, env)), projectDir, env, seen)
				}
			}
		}
		f = refFile{}
	}
}

// include records an include entry. Relative paths are resolved against
// both the including file's directory and the project directory: recording
// both is cheaper than replicating compose-go's rules exactly.
func (r *recorder) include(entry any, dir, projectDir string, env types.Mapping, seen map[string]bool) {
	var paths, envFiles []string
	incDir := ""
	switch v := entry.(type) {
	case string:
		paths = []string{v}
	case map[string]any:
		paths = stringsOf(v["path"])
		envFiles = stringsOf(v["env_file"])
		if d, ok := v["project_directory"].(string); ok {
			incDir = interpolate(d, env)
		}
	}
	bases := []string{dir, projectDir}
	for i, p := range paths {
		p = interpolate(p, env)
		for _, base := range bases {
			target := resolveIn(base, p)
			r.walkFile(target, filepath.Dir(target), env, seen)
			if i == 0 && incDir == "" {
				r.add(filepath.Join(filepath.Dir(target), ".env"))
			}
		}
	}
	for _, base := range bases {
		if incDir != "" {
			r.add(filepath.Join(resolveIn(base, incDir), ".env"))
		}
		for _, e := range envFiles {
			r.add(resolveIn(base, interpolate(e, env)))
		}
	}
}

func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func resolveIn(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// interpolate substitutes variables the way the loader will; on a syntax
// error the raw text is the best guess left.
func interpolate(s string, env types.Mapping) string {
	out, err := template.Substitute(s, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		return s
	}
	return out
}
