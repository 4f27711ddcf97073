package builder

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// copySource is where a COPY --from, ADD or RUN --mount reads: the build
// context, a named additional context, an earlier stage or an image.
type copySource struct {
	isContext bool
	// key identifies an immutable source (a stage or an image); content of
	// mutable sources (directories) is hashed instead.
	key     string
	fs      *srcFS
	ignored func(string) bool
	layers  []Layer // stage or image: mounted on open
	rf      Rootfs
	owned   bool // fs belongs to this source and is closed with it
	r       *buildRun
}

func (r *buildRun) source(ctx context.Context, from string) (*copySource, error) {
	if from == "" {
		return &copySource{isContext: true, fs: r.ctx.fs, ignored: r.ctx.Ignored, r: r}, nil
	}
	if dir, ok := r.o.AdditionalContexts[from]; ok {
		if img, ok := strings.CutPrefix(dir, "docker-image://"); ok {
			return r.imageSource(ctx, img)
		}
		if svc, ok := strings.CutPrefix(dir, "service:"); ok {
			if r.o.ServiceImage == nil {
				return nil, fmt.Errorf("additional context %s=%s: no project to build the service from", from, dir)
			}
			ref, err := r.o.ServiceImage(ctx, svc)
			if err != nil {
				return nil, fmt.Errorf("additional context %s=%s: %w", from, dir, err)
			}
			return r.imageSource(ctx, ref)
		}
		if strings.Contains(dir, "://") || strings.HasPrefix(dir, "target:") {
			return nil, fmt.Errorf("additional context %s=%s: only directories, docker-image:// and service: are supported", from, dir)
		}
		c, err := OpenContext(dir, "")
		if err != nil {
			return nil, fmt.Errorf("additional context %s: %w", from, err)
		}
		return &copySource{isContext: true, fs: c.fs, ignored: c.Ignored, owned: true, r: r}, nil
	}
	df := r.plan.Dockerfile
	lower := strings.ToLower(from)
	for _, s := range r.plan.Stages {
		if s.Name == lower || (s.Name != lower && strconv.Itoa(s.Index) == from) {
			r.mu.Lock()
			st := r.results[s]
			r.mu.Unlock()
			if st == nil {
				return nil, fmt.Errorf("stage %s is not built", from)
			}
			return &copySource{key: "stage:" + st.key, layers: st.layers, r: r}, nil
		}
	}
	if i := stageIndex(df.Stages, lower, len(df.Stages)); i >= 0 {
		return nil, fmt.Errorf("stage %s is not a dependency of this stage", from)
	}
	return r.imageSource(ctx, from)
}

func (r *buildRun) imageSource(ctx context.Context, ref string) (*copySource, error) {
	bi, err := r.image(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &copySource{key: "image:" + bi.ID.String(), layers: bi.Layers, r: r}, nil
}

// open makes the source readable; for stages and images this mounts them.
func (s *copySource) open(ctx context.Context) (*srcFS, func(string) bool, error) {
	if s.fs != nil {
		return s.fs, s.ignored, nil
	}
	rf, err := s.r.b.store.Prepare(ctx, s.layers)
	if err != nil {
		return nil, nil, err
	}
	fs, err := openSrcFS(rf.Path(), true)
	if err != nil {
		rf.Release(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	s.rf, s.fs, s.owned = rf, fs, true
	return fs, nil, nil
}

func (s *copySource) close() {
	if s.owned && s.fs != nil {
		s.fs.Close()
		s.fs = nil
	}
	if s.rf != nil {
		s.rf.Release(context.Background())
		s.rf = nil
	}
}
