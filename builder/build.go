package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// Options describe one build, as compose's build: section and docker build
// flags do.
type Options struct {
	ContextDir         string
	Dockerfile         string // relative to ContextDir, or absolute; "" is "Dockerfile"
	DockerfileInline   string // used instead of the file when set
	Target             string
	BuildArgs          map[string]string
	Tags               []string
	Labels             map[string]string
	AdditionalContexts map[string]string // name → directory, docker-image://REF or service:NAME, usable as --from=name
	// ServiceImage returns the image reference built for a service of the
	// project (additional_contexts: service:NAME), building it when needed.
	ServiceImage func(ctx context.Context, name string) (string, error)
	NoCache      bool
	Pull         bool   // pull base images even when present
	Network      string // RUN network when the instruction has no --network
	// Secrets are what RUN --mount=type=secret,id=ID reads; never stored
	// in a layer nor in a cache key.
	Secrets map[string]SecretSource
	// SSH are the agents RUN --mount=type=ssh,id=ID forwards: an agent
	// socket or private key files; no path means $SSH_AUTH_SOCK.
	SSH      map[string][]string
	Progress io.Writer
}

// Result is a built image.
type Result struct {
	ID     digest.Digest // config digest
	Tags   []string
	Config []byte
	Layers []Layer
	Steps  int
	Cached int
}

// Builder builds images into a Store, running RUN steps with a Runner.
type Builder struct {
	store  Store
	runner Runner
	root   string
	cache  *cacheIndex
	locks  sync.Map // cache mount id → *sync.Mutex
	net    Networker
}

// SetNetwork gives RUN --network=default steps a namespace of their own
// behind berth's NAT; without it they share the host's network.
func (b *Builder) SetNetwork(n Networker) { b.net = n }

// New returns a builder keeping its cache index and cache mounts under root
// (e.g. <state root>/builder).
func New(root string, s Store, r Runner) (*Builder, error) {
	c, err := openCacheIndex(filepath.Join(root, "cache"))
	if err != nil {
		return nil, fmt.Errorf("builder cache: %w", err)
	}
	return &Builder{store: s, runner: r, root: root, cache: c}, nil
}

// buildRun is the state of one Build call.
type buildRun struct {
	b     *Builder
	o     Options
	plan  *Plan
	ctx   *Context
	epoch *time.Time // SOURCE_DATE_EPOCH: every timestamp of the image
	out   *progress
	// hashes are content digests of the context's files
	hashes *fileHashes

	mu      sync.Mutex
	results map[*PlannedStage]*stageState
}

// Build parses, plans and executes a Dockerfile and stores the image.
func (b *Builder) Build(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	for _, x := range []any{b.store, b.net} {
		if c, ok := x.(interface{ Cleanup(context.Context) error }); ok {
			if err := c.Cleanup(ctx); err != nil && o.Progress != nil {
				fmt.Fprintf(o.Progress, "WARNING: cleaning up after an interrupted build: %v\n", err)
			}
		}
	}
	name, data, err := readDockerfile(o)
	if err != nil {
		return nil, err
	}
	df, err := Parse(name, data)
	if err != nil {
		return nil, err
	}
	plan, err := NewPlan(df, PlanOptions{Target: o.Target, BuildArgs: o.BuildArgs})
	if err != nil {
		return nil, err
	}
	bctx, err := OpenContext(o.ContextDir, o.Dockerfile)
	if err != nil {
		return nil, err
	}
	defer bctx.Close()
	epoch, err := sourceDateEpoch(o.BuildArgs)
	if err != nil {
		return nil, err
	}
	r := &buildRun{b: b, o: o, plan: plan, ctx: bctx, epoch: epoch,
		out: newProgress(o.Progress), results: map[*PlannedStage]*stageState{},
		hashes: loadFileHashes(filepath.Join(b.root, "filehash"), bctx.Dir)}
	defer r.hashes.save()
	for _, w := range df.Warnings {
		r.out.printf("WARNING: %s\n", w)
	}
	for _, a := range plan.UnusedArgs {
		r.out.printf("WARNING: build argument %s is not consumed by any stage\n", a)
	}
	if b.net != nil {
		// builds running in parallel share the network: a Networker that
		// counts its users (BridgeNetwork) closes it after the last one
		if o, ok := b.net.(interface{ Open() }); ok {
			o.Open()
		}
		defer b.net.Close(context.WithoutCancel(ctx))
	}
	for _, level := range plan.Levels {
		g, gctx := errgroup.WithContext(ctx)
		for _, s := range level {
			g.Go(func() error {
				st, err := r.stage(gctx, s)
				if err != nil {
					return err
				}
				r.mu.Lock()
				r.results[s] = st
				r.mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	res, err := r.export(ctx)
	if err != nil {
		return nil, err
	}
	r.out.finish(res, time.Since(start))
	return res, nil
}

func readDockerfile(o Options) (string, []byte, error) {
	if o.DockerfileInline != "" {
		return "Dockerfile (inline)", []byte(o.DockerfileInline), nil
	}
	name := o.Dockerfile
	if name == "" {
		name = "Dockerfile"
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(o.ContextDir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	return name, data, nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (build arg, then environment),
// which fixes every timestamp of the image for reproducible digests.
func sourceDateEpoch(args map[string]string) (*time.Time, error) {
	v, ok := args["SOURCE_DATE_EPOCH"]
	if !ok {
		v = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// stamp is the time recorded for the next history entry of a stage.
// Without SOURCE_DATE_EPOCH it is when the stage's newest layer was built
// (taken from the cache on a hit), so a fully cached rebuild yields the
// very same image and does not recreate containers.
func (r *buildRun) stamp(st *stageState) time.Time {
	if r.epoch != nil {
		return *r.epoch
	}
	return st.time
}

// export writes the target stage's image into the store.
func (r *buildRun) export(ctx context.Context) (*Result, error) {
	st := r.results[r.plan.Target]
	img := cloneImage(st.img)
	if len(r.o.Labels) > 0 && img.Config.Labels == nil {
		img.Config.Labels = map[string]string{}
	}
	for k, v := range r.o.Labels {
		img.Config.Labels[k] = v
	}
	t := r.stamp(st)
	if t.IsZero() {
		t = time.Now().UTC()
	}
	img.Created = &t
	img.RootFS.Type = "layers"
	img.RootFS.DiffIDs = nil
	for _, l := range st.layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.DiffID)
	}
	config, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	id, err := r.b.store.PutImage(ctx, config, st.layers, r.o.Tags)
	if err != nil {
		return nil, fmt.Errorf("store image: %w", err)
	}
	steps, cached := r.out.counts()
	return &Result{ID: id, Tags: r.o.Tags, Config: config, Layers: st.layers, Steps: steps, Cached: cached}, nil
}

// stageState is a stage being built: its config, layers and cache key.
type stageState struct {
	img    *Image
	layers []Layer
	key    string
	time   time.Time // newest layer of the stage, see buildRun.stamp
	args   *vars
	cmdSet bool
	lex    *shell.Lex
	stage  *PlannedStage
}

func (st *stageState) addLayer(l Layer) {
	layers := make([]Layer, len(st.layers), len(st.layers)+1)
	copy(layers, st.layers)
	st.layers = append(layers, l)
}
