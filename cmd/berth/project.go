package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/state"
)

// composeOptions turns the global flags into loader options.
func composeOptions() compose.Options {
	return compose.Options{
		Files:            global.files,
		ProjectName:      global.projectName,
		ProjectDirectory: global.projectDirectory,
		Profiles:         global.profiles,
		EnvFiles:         global.envFiles,
		CacheDir:         filepath.Join(global.root, "cache", "compose"),
	}
}

// loadProject loads the project the global flags name, always from the
// files (no cache), for commands that need the compose model itself
// (config, build). The unimplemented-keys warning goes to stderr.
func loadProject(ctx context.Context) (*compose.Project, *state.Desired, error) {
	o := composeOptions()
	o.CacheDir = ""
	p, err := compose.Load(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	warnUnimplemented(p.Unimplemented)
	d, err := p.Desired()
	if err != nil {
		return nil, nil, err
	}
	return p, d, nil
}

// loadDesired is loadProject for commands that only need the desired state
// (up, down, ps...): it is served from the cache under --root when no
// input changed, which keeps a no-op `berth up` fast.
func loadDesired(ctx context.Context) (*state.Desired, error) { return loadDesiredWith(ctx, nil) }

// loadDesiredWith is loadDesired telling onStale the project the files
// named last time when it loads them again (see compose.Options.OnStale).
func loadDesiredWith(ctx context.Context, onStale func(project string)) (*state.Desired, error) {
	o := composeOptions()
	o.OnStale = onStale
	l, err := compose.LoadDesired(ctx, o)
	if err != nil {
		return nil, err
	}
	warnUnimplemented(l.Unimplemented)
	return l.Desired, nil
}

// compose-go reports through logrus (unset variables, obsolete version:
// ...); print those like berth's own warnings.
func init() { logrus.SetFormatter(berthWarnings{}) }

type berthWarnings struct{}

func (berthWarnings) Format(e *logrus.Entry) ([]byte, error) {
	return []byte("berth: " + e.Level.String() + ": " + e.Message + "\n"), nil
}

func warnUnimplemented(paths []string) {
	if w := compose.Warning(paths); w != "" {
		fmt.Fprintln(os.Stderr, "berth: warning:", w)
	}
}
