package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/state"
)

// repairInterval is how often an attached up looks at the machine again.
const repairInterval = 2 * time.Second

// repairWhileAttached keeps the project converged while `berth up` runs
// attached, as watch and sync do: a container killed, stopped or removed
// from outside, a network or a volume gone, is put back within seconds by
// another level-triggered pass, printed here and recorded in the events.
// It runs until ctx ends; the caller ends it before stopping the project.
func repairWhileAttached(ctx context.Context, w io.Writer, d driver.Driver, want *state.Desired, ro reconciler.Options) {
	ro.RefreshImages = false // repair what is there; pulls and builds are up's first pass
	// A pass that fails before any operation (an observation, a plan)
	// is reported once per distinct error, not every repairInterval.
	lastErr := ""
	l := &reconciler.Loop{
		Driver: d, Project: want.Project, Options: ro,
		Desired: func(context.Context) (*state.Desired, error) { return want, nil },
		Locker:  reconciler.FileLock(filepath.Join(global.root, "projects", want.Project+".lock")),
		Resync:  repairInterval,
		Exec: reconciler.ExecOptions{Parallel: global.parallel, OnEvent: func(e reconciler.Event) {
			switch e.Phase {
			case reconciler.Succeeded:
				fmt.Fprintf(w, "berth: repaired: %s %s (%s)\n", e.Op.Object, e.Op.Kind, e.Op.Reason)
			case reconciler.Failed:
				fmt.Fprintf(w, "berth: repair failed: %s %s: %v\n", e.Op.Object, e.Op.Kind, e.Err)
			}
		}},
		OnPass: func(res reconciler.PassResult) {
			msg := ""
			if res.Err != nil && len(res.Plans) == 0 && ctx.Err() == nil {
				msg = res.Err.Error()
			}
			if msg != "" && msg != lastErr {
				fmt.Fprintf(w, "berth: repair failed: %s\n", msg)
			}
			lastErr = msg
		},
	}
	l.Run(ctx)
}
