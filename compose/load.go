// Package compose loads compose files the way docker compose does (through
// compose-go), turns the project into berth's desired state and computes the
// config hashes containers are labelled with.
package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/consts"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"

	"github.com/berth-dev/berth/state"
)

// Options are the inputs of a load, as docker compose's global flags.
type Options struct {
	Files            []string // -f, in order; "-" reads stdin
	ProjectName      string   // -p
	ProjectDirectory string   // --project-directory
	Profiles         []string // --profile (COMPOSE_PROFILES when empty)
	EnvFiles         []string // --env-file (.env of the working directory when empty)
	NoInterpolate    bool

	// Environ is the process environment ("KEY=VALUE"); nil means os.Environ().
	Environ []string
	// Dir is the directory the command runs in; "" means the current one.
	Dir string

	// CacheDir holds cached desired states (see LoadDesired); "" disables
	// the cache.
	CacheDir string
	// OnStale, when set, is called by LoadDesired before it loads the
	// files again because its cache entry for them no longer matches,
	// with the project that entry names: the project the files named last
	// time, most likely the one they name now.
	OnStale func(project string)
}

// Project is a loaded compose project and what it was loaded from.
type Project struct {
	*types.Project
	// Inputs are every path whose existence or content the project depends
	// on, including discovery candidates that were absent.
	Inputs []string
	// Unimplemented are the attribute paths berth ignores (see Warning).
	Unimplemented []string
	// EnvFiles are the project-level env files that were read (.env or
	// --env-file).
	EnvFiles []string
}

// Desired converts the project (see the package-level Desired) and adds
// what only the load knows: the project's env files.
func (p *Project) Desired() (*state.Desired, error) {
	d, err := Desired(p.Project)
	if err != nil {
		return nil, err
	}
	d.EnvFiles = slices.Clone(p.EnvFiles)
	if len(p.EnvFiles) > 0 {
		for _, s := range d.Services {
			s.Container.Labels[state.LabelEnvFile] = strings.Join(p.EnvFiles, ",")
		}
	}
	return d, nil
}

func (o Options) environ() []string {
	if o.Environ != nil {
		return o.Environ
	}
	return os.Environ()
}

func (o Options) dir() (string, error) {
	if o.Dir != "" {
		return filepath.Abs(o.Dir)
	}
	return os.Getwd()
}

// warmSchema compiles compose-go's JSON schema on another goroutine, once
// per process: the compile (~10 ms) does not depend on the files, so it
// runs while the loader reads, parses and interpolates them; the loader's
// first schema.Validate waits for it (compose-go keeps it in a sync.Once).
// Only a load pays for it: a cached desired state never validates.
//
// The schema is compiled as it is, not first validated against its draft's
// meta-schema (which took another ~22 ms of CPU, the meta-schemas' compile
// included): it is fixed when berth is built, and TestComposeSchemaValid
// checks it once, in the test suite.
var warmSchema = sync.OnceFunc(func() {
	jsonschema.SkipSchemaValidation.Store(true)
	go func() { _ = schema.Validate(map[string]any{}) }()
})

// Load reads and normalises the project exactly as docker compose would.
func Load(ctx context.Context, o Options) (p *Project, err error) {
	defer func() {
		// a compose file is untrusted input: whatever it does to the
		// loader must end as an error, not a crash
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("loading compose files: internal error: %v", r)
		}
	}()
	warmSchema()
	cwd, err := o.dir()
	if err != nil {
		return nil, err
	}
	rec := &recorder{}
	var unimplemented []string
	po, err := projectOptions(o, cwd, rec, func(found []loader.UnsupportedAttribute) {
		for _, f := range found {
			unimplemented = append(unimplemented, f.Path.String())
		}
	})
	if err != nil {
		return nil, err
	}
	if len(po.ConfigPaths) == 0 {
		return nil, fmt.Errorf("no configuration file provided: not found (looked for %s in %s and its parents)", cli.DefaultFileNames, workingDirOf(po, cwd))
	}
	// compose-go reads the working directory from the first file when
	// --project-directory is absent; pin it so that "-" resolves against
	// the directory the command runs in.
	if po.WorkingDir == "" && po.ConfigPaths[0] == "-" {
		po.WorkingDir = cwd
	}
	rec.add(po.EnvFiles...)
	for _, f := range po.ConfigPaths {
		if f != "-" {
			rec.add(f)
		}
	}
	tp, err := po.LoadProject(ctx)
	if err != nil {
		return nil, locate(err, po.ConfigPaths)
	}
	rec.references(po.ConfigPaths, tp)
	return &Project{Project: tp, Inputs: rec.sorted(), Unimplemented: dedupe(unimplemented), EnvFiles: slices.Clone(po.EnvFiles)}, nil
}

// projectOptions mirrors the order docker compose applies its options in:
// .env of the working directory first (it may set COMPOSE_FILE,
// COMPOSE_PROFILES, COMPOSE_PROJECT_NAME), then file selection, then the
// .env of the project directory the selected files imply.
func projectOptions(o Options, cwd string, rec *recorder, report func([]loader.UnsupportedAttribute)) (*cli.ProjectOptions, error) {
	files := absAll(cwd, o.Files)
	projDir := absFrom(cwd, o.ProjectDirectory)
	envFiles := absAll(cwd, o.EnvFiles)
	return cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(projDir),
		cli.WithEnv(o.environ()),
		cli.WithEnv([]string{"PWD=" + cwd}),
		pinDir(cwd, files),
		rec.dotEnvCandidate(),
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		unpinDir(projDir),
		configFileEnv(cwd),
		discover(rec, cwd),
		rec.dotEnvCandidate(),
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(o.Profiles...),
		cli.WithName(o.ProjectName),
		cli.WithInterpolation(!o.NoInterpolate),
		cli.WithResolvedPaths(true),
		cli.WithLoadOptions(loader.WithSupportedAttributes(supportedAttributes(), report)),
	)
}

func workingDirOf(po *cli.ProjectOptions, cwd string) string {
	if po.WorkingDir != "" {
		return po.WorkingDir
	}
	return cwd
}

func absFrom(dir, p string) string {
	if p == "-" || p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func absAll(dir string, ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, absFrom(dir, p))
	}
	return out
}

// discover is compose's default file discovery (the nearest directory,
// upwards, holding one of the default names, plus its override file),
// recording every candidate it probed: creating a missing one must
// invalidate a cached project.
func discover(rec *recorder, cwd string) cli.ProjectOptionsFn {
	return func(o *cli.ProjectOptions) error {
		if len(o.ConfigPaths) > 0 {
			return nil
		}
		dir := o.WorkingDir
		if dir == "" {
			dir = cwd
		}
		for {
			if main := firstExisting(rec, dir, cli.DefaultFileNames); main != "" {
				o.ConfigPaths = append(o.ConfigPaths, main)
				if ov := firstExisting(rec, dir, cli.DefaultOverrideFileNames); ov != "" {
					o.ConfigPaths = append(o.ConfigPaths, ov)
				}
				return nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return nil
			}
			dir = parent
		}
	}
}

// firstExisting probes the names in order; compose warns when more than
// one exists and takes the first, and so does berth (silently: the choice
// is deterministic). Every name is recorded, so adding a higher-priority
// file later is noticed.
func firstExisting(rec *recorder, dir string, names []string) string {
	found := ""
	for _, n := range names {
		p := filepath.Join(dir, n)
		rec.add(p)
		if found != "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			found = p
		}
	}
	return found
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// pinDir makes the first .env lookup happen in the command's directory
// (compose uses the process's one, which differs when Options.Dir is set).
func pinDir(cwd string, files []string) cli.ProjectOptionsFn {
	return func(o *cli.ProjectOptions) error {
		if o.WorkingDir == "" && len(files) == 0 {
			o.WorkingDir = cwd
		}
		return nil
	}
}

func unpinDir(projDir string) cli.ProjectOptionsFn {
	return func(o *cli.ProjectOptions) error {
		o.WorkingDir = projDir
		return nil
	}
}

// configFileEnv is COMPOSE_FILE, relative paths taken from the command's
// directory.
func configFileEnv(cwd string) cli.ProjectOptionsFn {
	return func(o *cli.ProjectOptions) error {
		f, ok := o.Environment[consts.ComposeFilePath]
		if len(o.ConfigPaths) > 0 || !ok || f == "" {
			return nil
		}
		sep := o.Environment[consts.ComposePathSeparator]
		if sep == "" {
			sep = string(os.PathListSeparator)
		}
		for _, p := range strings.Split(f, sep) {
			o.ConfigPaths = append(o.ConfigPaths, absFrom(cwd, p))
		}
		return nil
	}
}

// locate makes sure a load error names the file it comes from. compose-go
// names it for most errors, but not for a YAML syntax error found while
// looking for the project name, nor for interpolation errors.
func locate(err error, files []string) error {
	msg := err.Error()
	for _, f := range files {
		if f != "-" && strings.Contains(msg, f) {
			return err
		}
	}
	for _, f := range files {
		if f == "-" {
			continue
		}
		if b, rerr := os.ReadFile(f); rerr == nil && yamlError(b) != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	if len(files) == 1 {
		return fmt.Errorf("%s: %w", files[0], err)
	}
	return fmt.Errorf("%s: %w", strings.Join(files, ", "), err)
}

func yamlError(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
