package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// projectTarget is what a project command acts on: the project's name, its
// desired state when the compose files load, and the machine.
type projectTarget struct {
	name    string
	desired *state.Desired // nil: -p NAME for a project without its files here
	d       *native.Driver
}

// openProject loads the project from the compose files, or with -p alone
// works on whatever the machine has under that name (docker compose's
// `down -p NAME` from any directory).
func openProject(ctx context.Context) (*projectTarget, error) {
	want, err := loadDesired(ctx)
	if err != nil && global.projectName == "" {
		return nil, err
	}
	t := &projectTarget{desired: want}
	if want != nil {
		t.name = want.Project
	} else {
		t.name = global.projectName
	}
	if t.d, err = nativeDriver(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// lock takes the project's mutation lock (see DESIGN.md: mutations of one
// project are serialised; reads take no lock).
func (t *projectTarget) lock(ctx context.Context) (func(), error) {
	return reconciler.FileLock(t.lockPath()).Lock(ctx)
}

func (t *projectTarget) lockPath() string {
	return filepath.Join(global.root, "projects", t.name+".lock")
}

// containers lists the project's containers of the named services (all
// when none are named), one-off containers only when asked.
func (t *projectTarget) containers(ctx context.Context, services []string, oneOff bool) ([]native.ContainerInfo, error) {
	all, err := t.d.Containers(ctx, t.name)
	if err != nil {
		return nil, err
	}
	if t.desired != nil {
		for _, s := range services {
			if _, ok := t.desired.Services[s]; !ok {
				return nil, fmt.Errorf("no such service: %s", s)
			}
		}
	}
	var out []native.ContainerInfo
	for _, c := range all {
		if c.OneOff && !oneOff {
			continue
		}
		if len(services) > 0 && !slices.Contains(services, c.Service) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}
