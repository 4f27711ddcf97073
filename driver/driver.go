// Package driver defines what the reconciler asks of the machine: one method
// per plan operation, each idempotent, and the errors they may return.
package driver

import (
	"context"
	"errors"
	"time"

	"github.com/berth-dev/berth/state"
)

// Error contract. Remove* and Stop* of something missing return nil; Create*
// of something present returns ErrAlreadyExists; operations on a missing
// object (other than removal) return ErrNotFound. Drivers wrap these with
// fmt.Errorf("...: %w", ErrX) so callers test them with errors.Is.
var (
	ErrAlreadyExists = errors.New("already exists")
	ErrNotFound      = errors.New("not found")
	// ErrInvalid marks a request that can never succeed as given (a bad
	// spec): the loop reports it and does not retry.
	ErrInvalid = errors.New("invalid request")
)

// Driver is the machine as the reconciler sees it. Every method is one plan
// operation and is idempotent as described by the error contract above.
type Driver interface {
	// Observe reads the whole actual state of a project, fresh, every call.
	// Containers come back as they were created: Image is the spec's Image
	// as written, ConfigHash, ImageDigest, Labels, Service and Number are the
	// spec's, Networks the attached networks' full names. Images lists the
	// store's images (what EnsureImage returned).
	Observe(ctx context.Context, project string) (*state.Observed, error)
	// EnsureImage builds or pulls the image as the spec and its pull policy
	// say, and returns what is in the store.
	EnsureImage(ctx context.Context, s state.ImageSpec) (state.ImageRef, error)
	CreateNetwork(ctx context.Context, s state.NetworkSpec) error
	RemoveNetwork(ctx context.Context, name string) error
	CreateVolume(ctx context.Context, s state.VolumeSpec) error
	RemoveVolume(ctx context.Context, name string) error
	// CreateContainer creates (does not start) a container; s.ImageDigest is set.
	CreateContainer(ctx context.Context, s state.ContainerSpec) (id string, err error)
	// StartContainer starts a created or stopped container; starting a running one is a no-op.
	StartContainer(ctx context.Context, id string) error
	// StopContainer sends the stop signal, waits up to timeout, then kills.
	// Stopping a container that is not running is a no-op.
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	// RemoveContainer removes a container, killing it first if it still
	// runs (the reconciler always stops it gracefully before).
	RemoveContainer(ctx context.Context, id string) error
	// RenameContainer gives a container a new name (start-first updates
	// create the new replica under a temporary name). ErrAlreadyExists when
	// another container of the machine has the name; renaming to the current
	// name is a no-op.
	RenameContainer(ctx context.Context, id, name string) error
	// WaitContainer blocks until the container reaches condition (one of
	// the Wait* constants) and returns nil, or returns an error as soon as
	// the condition can no longer be reached: WaitHealthy fails when the
	// container turns unhealthy or exits, and with ErrInvalid when it has
	// no healthcheck; WaitExitedSuccessfully fails when it exits non-zero;
	// WaitRunning fails when it exits before having started. Cancelling ctx
	// ends the wait with ctx.Err().
	WaitContainer(ctx context.Context, id, condition string) error
}

// Conditions of WaitContainer.
const (
	// WaitRunning is reached once the container has started (it may have
	// exited since: a short job that already finished has started).
	WaitRunning = "running"
	// WaitHealthy is reached when its healthcheck reports healthy.
	WaitHealthy = "healthy"
	// WaitExitedSuccessfully is reached when it has exited with status 0.
	WaitExitedSuccessfully = "exited-successfully"
)
