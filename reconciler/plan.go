// Package reconciler converges a machine to a project's desired state: Plan
// compares desired with observed state and returns a DAG of operations (pure,
// no I/O), Execute runs a plan against a driver (no decisions), and Loop
// repeats observe → plan → execute whenever a source says "look again".
package reconciler

import (
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/state"
)

// Kind names an operation; each kind is exactly one driver call.
type Kind string

// The operation kinds, named after the driver methods they call.
const (
	EnsureImage     Kind = "EnsureImage"
	CreateNetwork   Kind = "CreateNetwork"
	RemoveNetwork   Kind = "RemoveNetwork"
	CreateVolume    Kind = "CreateVolume"
	RemoveVolume    Kind = "RemoveVolume"
	CreateContainer Kind = "CreateContainer"
	StartContainer  Kind = "StartContainer"
	StopContainer   Kind = "StopContainer"
	RemoveContainer Kind = "RemoveContainer"
	RenameContainer Kind = "RenameContainer"
	WaitContainer   Kind = "WaitContainer"
	// Delay waits Duration between the batches of a rollout; it calls no
	// driver method.
	Delay Kind = "Delay"
	// Monitor watches a new container for Duration (deploy.update_config
	// monitor) and fails if it exits or turns unhealthy meanwhile; it only
	// observes.
	Monitor Kind = "Monitor"
)

// Op is one operation of a plan. Which payload fields are set depends on
// Kind; Execute reads nothing else.
type Op struct {
	ID     int    // 1-based position in Plan.Ops
	Kind   Kind   // the driver call
	Object string // image:REF, network:NAME, volume:NAME, service:SVC:N (…+next for a start-first replacement)
	Reason string // why the planner wants it, for people

	// Deps must all succeed before the op runs; if one fails the op is
	// skipped. After must only have finished (a required: false
	// dependency): its failure does not stop the op.
	Deps  []int
	After []int

	Image     *state.ImageSpec     // EnsureImage
	Network   *state.NetworkSpec   // CreateNetwork
	Volume    *state.VolumeSpec    // CreateVolume
	Container *state.ContainerSpec // CreateContainer

	// Name is the network or volume to remove, or the new container name of
	// RenameContainer.
	Name string
	// ContainerID is the existing container a Start/Stop/Remove/Rename/Wait
	// acts on; when empty, IDFrom is the CreateContainer op whose result
	// it acts on.
	ContainerID string
	IDFrom      int
	// DigestFrom is the EnsureImage op whose digest fills
	// Container.ImageDigest; zero when the planner knew the digest.
	DigestFrom int
	Condition  string        // WaitContainer: a driver.Wait* condition
	Timeout    time.Duration // StopContainer
	Duration   time.Duration // Delay, Monitor
	// OnFailure makes the op conditional (a rollback): it runs only when
	// one of these ops failed or was skipped, and is silently not run
	// (nor its hard dependents) when all succeeded. They are also After
	// dependencies, so the op waits for them to finish.
	OnFailure []int
}

// Plan is what must happen, in a stable topological order.
type Plan struct {
	Project string
	Ops     []*Op
	// Warnings are things the plan deliberately does not do (orphans kept,
	// a changed volume not recreated...), for the user to see.
	Warnings []string
}

// Empty reports whether there is nothing to do.
func (p *Plan) Empty() bool { return p == nil || len(p.Ops) == 0 }

// String renders one line per operation:
//
//	[DEPS] -> #ID OBJECT KIND (REASON)
//
// DEPS lists the IDs the op waits for, space separated and ascending; an ID
// followed by "?" is an After (soft) dependency. Tests assert on this text.
func (p *Plan) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	for _, op := range p.Ops {
		b.WriteString(op.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func (op *Op) String() string {
	var b strings.Builder
	b.WriteByte('[')
	deps := mergeDeps(op.Deps, op.After)
	for i, d := range deps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(d.id))
		if d.soft {
			b.WriteByte('?')
		}
	}
	b.WriteString("] -> #")
	b.WriteString(strconv.Itoa(op.ID))
	b.WriteByte(' ')
	b.WriteString(op.Object)
	b.WriteByte(' ')
	b.WriteString(string(op.Kind))
	if op.Reason != "" {
		b.WriteString(" (")
		b.WriteString(op.Reason)
		b.WriteByte(')')
	}
	if len(op.OnFailure) > 0 {
		b.WriteString(" if any of")
		for _, id := range op.OnFailure {
			b.WriteString(" #")
			b.WriteString(strconv.Itoa(id))
		}
		b.WriteString(" fails")
	}
	return b.String()
}

type depRef struct {
	id   int
	soft bool
}

func mergeDeps(hard, soft []int) []depRef {
	out := make([]depRef, 0, len(hard)+len(soft))
	i, j := 0, 0
	for i < len(hard) || j < len(soft) {
		if j >= len(soft) || (i < len(hard) && hard[i] <= soft[j]) {
			out = append(out, depRef{hard[i], false})
			i++
		} else {
			out = append(out, depRef{soft[j], true})
			j++
		}
	}
	return out
}

// leavesWork tells whether executing the plan may leave work for another
// round: an image ensured (pulled, built) may have another digest than the
// containers the plan kept, which only a plan made after it compares.
func (p *Plan) leavesWork() bool {
	for _, op := range p.Ops {
		if op.Kind == EnsureImage {
			return true
		}
	}
	return false
}
