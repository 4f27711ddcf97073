package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/store"
)

// Open returns a builder over the layer store of a berth state root, with
// its cache under <stateRoot>/builder and RUN steps in namespaces.
func Open(stateRoot string, pullProgress io.Writer) (*Builder, error) {
	s, err := store.Open(stateRoot)
	if err != nil {
		return nil, err
	}
	return New(filepath.Join(stateRoot, "builder"), &LayerStore{S: s, Progress: pullProgress}, NamespaceRunner{})
}

// UseBridgeNetwork attaches RUN --network=default steps to berth's
// "berth-build" bridge network (NAT to the outside, like containers) of
// the network layer under stateRoot and runRoot.
func (b *Builder) UseBridgeNetwork(stateRoot, runRoot string) error {
	m, err := network.New(network.Options{Root: stateRoot, RunRoot: runRoot, NoDNS: true})
	if err != nil {
		return err
	}
	b.SetNetwork(&BridgeNetwork{M: m, LockDir: filepath.Join(b.root, "netlocks"), Keep: keepBuildNetwork(stateRoot)})
	return nil
}

// keepBuildNetwork says whether the build bridge of a state root stays
// between builds: yes, except for roots under $TMPDIR (tests, throwaway
// roots, whose bridge nobody would ever remove);
// BERTH_KEEP_BUILD_NETWORK=1 or 0 decides instead.
func keepBuildNetwork(stateRoot string) bool {
	switch os.Getenv("BERTH_KEEP_BUILD_NETWORK") {
	case "1":
		return true
	case "0":
		return false
	}
	abs, err := filepath.Abs(stateRoot)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(os.TempDir()), abs)
	return err != nil || rel == ".." || strings.HasPrefix(rel, "../")
}

// Close releases what UseBridgeNetwork opened.
func (b *Builder) Close() error {
	if bn, ok := b.net.(*BridgeNetwork); ok {
		return bn.M.Close()
	}
	return nil
}

// UseRuntime runs RUN steps as containers of berth's runtime (seccomp,
// cgroup, masked paths, as service containers) instead of the lighter
// namespace runner; its containers live under <runRoot>/builder.
func (b *Builder) UseRuntime(runRoot string) error {
	rt, err := runtime.New(filepath.Join(runRoot, "builder"))
	if err != nil {
		return err
	}
	b.runner = RuntimeRunner{RT: rt}
	return nil
}

// SpecOptions turns a compose service's image spec into build options: the
// image is tagged with the service's image reference and build.tags. A
// service: additional context needs Options.ServiceImage (see
// ServiceImages).
func SpecOptions(img state.ImageSpec) Options {
	b := img.Build
	o := Options{
		ContextDir:         b.Context,
		Dockerfile:         b.Dockerfile,
		DockerfileInline:   b.DockerfileInline,
		Target:             b.Target,
		BuildArgs:          map[string]string{},
		Labels:             b.Labels,
		AdditionalContexts: b.AdditionalContexts,
		NoCache:            b.NoCache,
		Pull:               b.Pull,
		Network:            b.Network,
	}
	for k, v := range b.Args {
		o.BuildArgs[k] = v
	}
	for id, s := range b.Secrets {
		if o.Secrets == nil {
			o.Secrets = map[string]SecretSource{}
		}
		o.Secrets[id] = SecretSource{File: s.File, Value: s.Value}
	}
	for id, paths := range b.SSH {
		if o.SSH == nil {
			o.SSH = map[string][]string{}
		}
		o.SSH[id] = paths
	}
	if img.Ref != "" {
		o.Tags = append(o.Tags, img.Ref)
	}
	for _, t := range b.Tags {
		if t != img.Ref {
			o.Tags = append(o.Tags, t)
		}
	}
	return o
}

// ServiceImages builds the images of other services as service:NAME
// additional contexts need them: a build needing the image of a service
// that is being built (by a parallel job, or by the reconciler) waits for
// that build instead of starting another. A finished build is not
// remembered: the next one (a cache hit when nothing changed) sees changes.
type ServiceImages struct {
	// Build builds one service's image.
	Build func(ctx context.Context, img state.ImageSpec) (*Result, error)

	mu    sync.Mutex
	calls map[string]*serviceBuild
}

type serviceBuild struct {
	done chan struct{}
	res  *Result
	err  error
}

// Do builds img, or waits for the build of the same image reference that
// is running in this process and returns its result.
func (s *ServiceImages) Do(ctx context.Context, img state.ImageSpec) (*Result, error) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]*serviceBuild{}
	}
	c, ok := s.calls[img.Ref]
	if !ok {
		c = &serviceBuild{done: make(chan struct{})}
		s.calls[img.Ref] = c
		s.mu.Unlock()
		c.res, c.err = s.Build(ctx, img)
		s.mu.Lock()
		delete(s.calls, img.Ref)
		s.mu.Unlock()
		close(c.done)
		return c.res, c.err
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Resolver is Options.ServiceImage for a service's image spec: the
// services its build names (state.BuildSpec.ServiceContexts) are built
// through s.
func (s *ServiceImages) Resolver(img state.ImageSpec) func(context.Context, string) (string, error) {
	return func(ctx context.Context, name string) (string, error) {
		if img.Build == nil {
			return "", fmt.Errorf("service %s is not part of this build", name)
		}
		other, ok := img.Build.ServiceContexts[name]
		if !ok {
			return "", fmt.Errorf("service %s: no such service, or a cycle of service: contexts", name)
		}
		if other.Build == nil {
			return other.Ref, nil // an image the service runs as is
		}
		if _, err := s.Do(ctx, other); err != nil {
			return "", err
		}
		return other.Ref, nil
	}
}
