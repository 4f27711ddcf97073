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
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string) error
}
