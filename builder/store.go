package builder

import (
	"context"
	"errors"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Layer is one committed filesystem layer in the store.
type Layer struct {
	Digest    digest.Digest `json:"digest"` // blob digest, as in the manifest
	DiffID    digest.Digest `json:"diffID"` // digest of the uncompressed tar
	Size      int64         `json:"size"`
	MediaType string        `json:"mediaType"`
}

// BaseImage is an image the store holds.
type BaseImage struct {
	ID     digest.Digest // digest of the config
	Config []byte
	Layers []Layer // bottom first
}

// ErrNotFound is returned by Store.Image for an image the store lacks.
var ErrNotFound = errors.New("image not found")

// Store is what the builder needs from the layer store.
type Store interface {
	// Image returns a stored image by reference, or ErrNotFound.
	Image(ctx context.Context, ref string) (*BaseImage, error)
	// Pull fetches ref from its registry into the store.
	Pull(ctx context.Context, ref string) (*BaseImage, error)
	// HasLayer says whether a cached layer is still present.
	HasLayer(ctx context.Context, l Layer) bool
	// Prepare returns a writable rootfs made of layers (bottom first).
	Prepare(ctx context.Context, layers []Layer) (Rootfs, error)
	// PutImage stores a config and a manifest over layers, tags it with
	// every tag, and returns the image ID (the config digest).
	PutImage(ctx context.Context, config []byte, layers []Layer, tags []string) (digest.Digest, error)
}

// Rootfs is a prepared, writable root filesystem.
type Rootfs interface {
	// Path is where the rootfs can be read and written by this process.
	Path() string
	// Mounts make the same rootfs for a runtime.
	Mounts() []specs.Mount
	// Commit turns what changed since Prepare into a layer; nil when
	// nothing changed.
	Commit(ctx context.Context) (*Layer, error)
	// Release unmounts and deletes the rootfs; it is safe to call twice.
	Release(ctx context.Context) error
}

// Runner runs the process of a RUN instruction.
type Runner interface {
	Run(ctx context.Context, p *Process) error
}

// Process is one RUN: argv, environment and mounts inside a rootfs.
type Process struct {
	Rootfs  Rootfs
	Args    []string
	Env     []string
	Cwd     string
	UID     int
	GID     int
	Groups  []int
	Network string        // none, host or default
	Netns   string        // a network namespace to join ("" keeps the host's, or a new one for none)
	Mounts  []specs.Mount // --mount=type=cache|bind|tmpfs, already resolved on the host
	Output  io.Writer     // stdout and stderr
}

// ExitError is a RUN that exited with a non-zero status.
type ExitError struct {
	Code int
	Tail string // the last lines of output
}

func (e *ExitError) Error() string {
	if e.Tail == "" {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return fmt.Sprintf("exit code %d; last output:\n%s", e.Code, e.Tail)
}
