package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/builder"
	"github.com/berth-dev/berth/state"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

func init() {
	register(newBuildCmd)
	register(newBuilderCmd)
}

// newBuilderCmd is `berth builder prune`, as `docker builder prune`.
func newBuilderCmd() *cobra.Command {
	c := &cobra.Command{Use: "builder", Short: "Manage the build cache"}
	var all bool
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove build cache entries whose layers are gone (all entries, cache mounts and the build bridge with --all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := openBuilder(nil)
			if err != nil {
				return err
			}
			defer b.Close()
			st, err := b.Prune(cmd.Context(), all)
			if err != nil {
				return err
			}
			fmt.Printf("Removed %d cache entries and %d cache mounts\n", st.Records, st.CacheMounts)
			return nil
		},
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "Remove every cache entry and RUN cache mount")
	c.AddCommand(prune)
	return c
}

type buildFlags struct {
	noCache    bool
	pull       bool
	quiet      bool
	buildArgs  []string
	tags       []string
	context    string
	dockerfile string
	target     string
	secrets    []string
	ssh        []string
}

func newBuildCmd() *cobra.Command {
	var f buildFlags
	c := &cobra.Command{
		Use:   "build [OPTIONS] [SERVICE...]",
		Short: "Build the images of services (or, with --context, one Dockerfile)",
		Long: "Build the images of the project's services that have a build: section, with berth's own\n" +
			"builder and layer store. With --context, build a single Dockerfile as `docker build` does.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			var out io.Writer = os.Stderr // as docker build: stdout stays for -q
			if f.quiet || global.progress == "quiet" {
				out = nil
			}
			b, err := openBuilder(out)
			if err != nil {
				return err
			}
			defer b.Close()
			buildArgs, err := parseBuildArgs(f.buildArgs)
			if err != nil {
				return err
			}
			secrets, ssh, err := parseSecretFlags(f.secrets, f.ssh)
			if err != nil {
				return err
			}
			jobs, err := buildJobs(cmd, f, args)
			if err != nil {
				return err
			}
			ids := make([]string, len(jobs))
			g, gctx := errgroup.WithContext(ctx)
			if global.parallel > 0 {
				g.SetLimit(global.parallel)
			}
			// the CLI's flags apply to every build, those that service:
			// contexts start too; each image is built once
			serviceOf := map[string]string{}
			for _, j := range jobs {
				if j.spec != nil {
					serviceOf[j.spec.Ref] = j.service
				}
			}
			prepare := func(o *builder.Options, ref string) {
				o.NoCache = o.NoCache || f.noCache
				o.Pull = o.Pull || f.pull
				o.Progress = out
				name, ok := serviceOf[ref]
				if !ok {
					name = ref // a service: context outside the listed services
				}
				if out != nil && (len(jobs) > 1 || !ok) && ref != "" {
					o.Progress = &linePrefixer{w: out, prefix: "[" + name + "] "}
				}
				if o.BuildArgs == nil {
					o.BuildArgs = map[string]string{}
				}
				for k, v := range buildArgs {
					o.BuildArgs[k] = v
				}
				o.Secrets = mergeMap(o.Secrets, secrets)
				o.SSH = mergeMap(o.SSH, ssh)
			}
			images := &builder.ServiceImages{}
			images.Build = func(ctx context.Context, img state.ImageSpec) (*builder.Result, error) {
				o := builder.SpecOptions(img)
				o.Tags = append(o.Tags, f.tags...)
				prepare(&o, img.Ref)
				o.ServiceImage = images.Resolver(img)
				return b.Build(ctx, o)
			}
			for i, j := range jobs {
				g.Go(func() error {
					var res *builder.Result
					var err error
					if j.spec != nil {
						res, err = images.Do(gctx, *j.spec)
					} else {
						prepare(&j.Options, "")
						res, err = b.Build(gctx, j.Options)
					}
					if err != nil {
						if j.service != "" {
							return fmt.Errorf("service %q: %w", j.service, err)
						}
						return err
					}
					ids[i] = res.ID.String()
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				return err
			}
			if f.quiet {
				for _, id := range ids {
					fmt.Println(id)
				}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.BoolVar(&f.noCache, "no-cache", false, "Do not use the build cache")
	fl.BoolVar(&f.pull, "pull", false, "Always pull base images")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Print only the image IDs")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "Set a build argument (KEY=VALUE, or KEY to take it from the environment)")
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "Name the image (with --context; added to service images otherwise)")
	fl.StringVar(&f.context, "context", "", "Build this directory's Dockerfile instead of the project's services")
	fl.StringVar(&f.dockerfile, "dockerfile", "", "Dockerfile path, relative to the context (with --context)")
	fl.StringVar(&f.target, "target", "", "Stage to build (with --context)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "Secret for RUN --mount=type=secret (id=ID,src=FILE or id=ID,env=VAR)")
	fl.StringArrayVar(&f.ssh, "ssh", nil, "SSH agent for RUN --mount=type=ssh (default, or ID=SOCKET|KEY[,KEY])")
	return c
}

type buildJob struct {
	builder.Options
	service string
	spec    *state.ImageSpec // a service's image; nil for --context
}

// buildJobs lists what to build: one standalone Dockerfile, or the
// services with a build: section (all, or those named), each image once.
func buildJobs(cmd *cobra.Command, f buildFlags, services []string) ([]buildJob, error) {
	if f.context != "" {
		return []buildJob{{Options: builder.Options{ContextDir: f.context, Dockerfile: f.dockerfile, Target: f.target, Tags: f.tags}}}, nil
	}
	_, d, err := loadProject(cmd.Context())
	if err != nil {
		return nil, err
	}
	names := services
	if len(names) == 0 {
		names = d.ServiceNames()
	}
	seen := map[string]bool{}
	var jobs []buildJob
	for _, n := range names {
		s, ok := d.Services[n]
		if !ok {
			return nil, fmt.Errorf("no such service: %s", n)
		}
		if s.Image.Build == nil {
			if len(services) > 0 {
				fmt.Fprintf(os.Stderr, "berth: service %s has no build section, skipped\n", n)
			}
			continue
		}
		o := builder.SpecOptions(s.Image)
		o.Tags = append(o.Tags, f.tags...)
		key := strings.Join(o.Tags, ",")
		if seen[key] {
			continue
		}
		seen[key] = true
		img := s.Image
		jobs = append(jobs, buildJob{Options: o, service: n, spec: &img})
	}
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].service < jobs[j].service })
	return jobs, nil
}

// linePrefixer marks each line of a service's build output with its
// name, as services build in parallel. The builder writes whole lines.
type linePrefixer struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var buf bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) > 0 {
			buf.WriteString(p.prefix)
			buf.Write(line)
		}
	}
	if _, err := p.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

func parseBuildArgs(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid --build-arg %q", a)
		}
		if !ok {
			var set bool
			if v, set = os.LookupEnv(k); !set {
				continue
			}
		}
		out[k] = v
	}
	return out, nil
}

// parseSecretFlags reads --secret and --ssh flags.
func parseSecretFlags(secrets, ssh []string) (map[string]builder.SecretSource, map[string][]string, error) {
	var outS map[string]builder.SecretSource
	var outK map[string][]string
	for _, v := range secrets {
		id, src, err := builder.ParseSecret(v)
		if err != nil {
			return nil, nil, err
		}
		if outS == nil {
			outS = map[string]builder.SecretSource{}
		}
		outS[id] = src
	}
	for _, v := range ssh {
		id, paths, err := builder.ParseSSH(v)
		if err != nil {
			return nil, nil, err
		}
		if outK == nil {
			outK = map[string][]string{}
		}
		outK[id] = paths
	}
	return outS, outK, nil
}

// mergeMap returns base with over's entries on top (a new map).
func mergeMap[V any](base, over map[string]V) map[string]V {
	if len(over) == 0 {
		return base
	}
	out := make(map[string]V, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}
