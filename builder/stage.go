package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// stage builds one planned stage and returns its final state.
func (r *buildRun) stage(ctx context.Context, s *PlannedStage) (*stageState, error) {
	cmds := s.Stage.Commands
	total := len(cmds) + 1
	from := "FROM " + s.Base
	if s.Name != "" {
		from += " AS " + s.Name
	}
	step := r.out.begin(s, 1, total, from)
	st, err := r.base(ctx, s)
	if err != nil {
		step.failed(err)
		return nil, wrapAt(r.plan.Dockerfile.Name, s.Stage.Location, "FROM", err)
	}
	step.done()
	triggers, err := onbuildCommands(st.img.Config.OnBuild)
	if err != nil {
		return nil, errAt(r.plan.Dockerfile.Name, s.Stage.Location, "ONBUILD trigger of %s: %v", s.Base, err)
	}
	st.img.Config.OnBuild = nil
	cmds = append(triggers, cmds...)
	total = len(cmds) + 1
	for i, c := range cmds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		step := r.out.begin(s, i+2, total, c.(fmt.Stringer).String())
		cached, err := r.step(ctx, st, c, step)
		if err != nil {
			step.failed(err)
			return nil, wrapAt(r.plan.Dockerfile.Name, c.Location(), strings.ToUpper(c.Name()), err)
		}
		if cached {
			step.cached()
		} else {
			step.done()
		}
	}
	return st, nil
}

// base starts a stage from scratch, a previous stage or an image.
func (r *buildRun) base(ctx context.Context, s *PlannedStage) (*stageState, error) {
	st := &stageState{args: newVars(), lex: shell.NewLex(r.plan.Dockerfile.Escape), stage: s}
	switch {
	case s.BaseStage != nil:
		r.mu.Lock()
		prev := r.results[s.BaseStage]
		r.mu.Unlock()
		st.img = cloneImage(prev.img)
		st.layers = append([]Layer(nil), prev.layers...)
		st.key = prev.key
		st.time = prev.time
	case strings.EqualFold(s.Base, "scratch"):
		st.img = scratchImage()
		st.key = cacheKey("", "scratch")
	default:
		bi, err := r.image(ctx, s.Base)
		if err != nil {
			return nil, err
		}
		if st.img, err = parseImage(bi.Config); err != nil {
			return nil, err
		}
		st.layers = append([]Layer(nil), bi.Layers...)
		if st.img.Created != nil {
			st.time = st.img.Created.UTC()
		}
		st.key = cacheKey("", "image", bi.ID.String())
	}
	if _, ok := getEnv(st.img, "PATH"); !ok {
		setEnv(st.img, "PATH", defaultPath)
	}
	return st, nil
}

// image finds a base image, pulling it when missing or when --pull asks.
func (r *buildRun) image(ctx context.Context, ref string) (*BaseImage, error) {
	if !r.o.Pull {
		bi, err := r.b.store.Image(ctx, ref)
		if err == nil {
			return bi, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	bi, err := r.b.store.Pull(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return bi, nil
}

// onbuildCommands parses a base image's ONBUILD triggers.
func onbuildCommands(triggers []string) ([]instructions.Command, error) {
	var out []instructions.Command
	for _, t := range triggers {
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil {
			return nil, err
		}
		for _, n := range res.AST.Children {
			c, err := instructions.ParseCommand(n)
			if err != nil {
				return nil, err
			}
			switch strings.ToUpper(c.Name()) {
			case "FROM", "ONBUILD", "MAINTAINER":
				return nil, fmt.Errorf("%s is not allowed as an ONBUILD trigger", c.Name())
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// expander expands words with the stage's ENV over its ARGs.
func (st *stageState) expander() instructions.SingleWordExpander {
	env := overlay{env: envVars(st.img), args: st.args}
	return func(w string) (string, error) {
		s, _, err := st.lex.ProcessWord(w, env)
		return s, err
	}
}

// step executes one instruction and says whether its result came from the
// cache.
func (r *buildRun) step(ctx context.Context, st *stageState, c instructions.Command, out *step) (bool, error) {
	if a, ok := c.(*instructions.ArgCommand); ok {
		return false, r.arg(st, a)
	}
	if err := expandCommand(st, c); err != nil {
		return false, err
	}
	meta, err := applyMeta(st, c)
	if err != nil {
		return false, err
	}
	if meta {
		st.key = cacheKey(st.key, c.Name(), c)
		addHistory(st.img, r.stamp(st), c.(fmt.Stringer).String(), true)
		return false, nil
	}
	switch c := c.(type) {
	case *instructions.WorkdirCommand:
		return r.workdir(ctx, st, c)
	case *instructions.RunCommand:
		return r.run(ctx, st, c, out)
	case *instructions.CopyCommand:
		return r.copy(ctx, st, c)
	case *instructions.AddCommand:
		return r.add(ctx, st, c)
	}
	return false, fmt.Errorf("instruction %s is not supported", c.Name())
}

// expandCommand substitutes variables in place: ENV over ARG, with the
// Dockerfile rules of buildkit's lexer; heredoc bodies marked for expansion
// get the raw variant that keeps quotes.
func expandCommand(st *stageState, c instructions.Command) error {
	if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(st.expander()); err != nil {
			return err
		}
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		lex := shell.NewLex('\\')
		lex.SkipProcessQuotes = true
		env := overlay{env: envVars(st.img), args: st.args}
		return ex.ExpandRaw(func(w string) (string, error) {
			s, _, err := lex.ProcessWord(w, env)
			return s, err
		})
	}
	return nil
}

// arg declares ARGs in the stage: a --build-arg wins, then the default,
// then the global value of the same name.
func (r *buildRun) arg(st *stageState, c *instructions.ArgCommand) error {
	for _, a := range c.Args {
		if v, ok := r.o.BuildArgs[a.Key]; ok {
			st.args.Set(a.Key, v)
		} else if a.Value != nil {
			v, err := st.expander()(*a.Value)
			if err != nil {
				return err
			}
			st.args.Set(a.Key, v)
		} else if v, ok := r.plan.GlobalArgs.Get(a.Key); ok {
			st.args.Set(a.Key, v)
		} else {
			continue
		}
		v, _ := st.args.Get(a.Key)
		st.key = cacheKey(st.key, "ARG", a.Key, v)
	}
	addHistory(st.img, r.stamp(st), c.String(), true)
	return nil
}

// fsStep runs a filesystem-changing step unless the cache has it: do gets a
// fresh rootfs over the stage's layers, whose changes become the step's
// layer. The rootfs is released whatever happens.
func (r *buildRun) fsStep(ctx context.Context, st *stageState, key, createdBy string, do func(Rootfs) error) (bool, error) {
	return r.layerStep(ctx, st, key, key, st.layers, createdBy, do, nil)
}

// linkStep is a step whose layer stands alone (COPY --link): do writes
// into an empty rootfs, and key (which does not chain on the stage's
// previous steps) finds the layer again whatever came before it, so a
// changed earlier step reuses it. The stage's key then chains both.
func (r *buildRun) linkStep(ctx context.Context, st *stageState, key, createdBy string, do func(Rootfs) error, direct directFunc) (bool, error) {
	return r.layerStep(ctx, st, key, cacheKey(st.key, "LINK", key), nil, createdBy, do, direct)
}

// directFunc makes a step's layer itself, reading the rootfs only; it
// returns errIndirect when the step needs do and Commit instead.
type directFunc func(Rootfs) (*Layer, error)

// layerStep looks key up in the cache, else runs do over a rootfs of base
// (or direct, when given and able) and caches the layer under key; the
// stage goes on with stageKey.
func (r *buildRun) layerStep(ctx context.Context, st *stageState, key, stageKey string, base []Layer, createdBy string, do func(Rootfs) error, direct directFunc) (bool, error) {
	if !r.o.NoCache {
		if rec, ok := r.b.cache.get(key); ok && (rec.Layer == nil || r.b.store.HasLayer(ctx, *rec.Layer)) {
			r.apply(st, stageKey, createdBy, rec)
			return true, nil
		}
	}
	rf, err := r.b.store.Prepare(ctx, base)
	if err != nil {
		return false, fmt.Errorf("prepare rootfs: %w", err)
	}
	defer rf.Release(context.WithoutCancel(ctx))
	var l *Layer
	err = errIndirect
	if direct != nil {
		l, err = direct(rf)
	}
	if errors.Is(err, errIndirect) {
		if err := do(rf); err != nil {
			return false, err
		}
		l, err = rf.Commit(ctx)
		if err != nil {
			err = fmt.Errorf("commit layer: %w", err)
		}
	}
	if err != nil {
		return false, err
	}
	rec := &cacheRecord{Layer: l, Created: time.Now().UTC()}
	if err := r.b.cache.put(key, rec); err != nil {
		return false, err
	}
	r.apply(st, stageKey, createdBy, rec)
	return false, nil
}

func (r *buildRun) apply(st *stageState, key, createdBy string, rec *cacheRecord) {
	st.key = key
	if rec.Layer != nil {
		st.addLayer(*rec.Layer)
	}
	if rec.Created.After(st.time) {
		st.time = rec.Created
	}
	addHistory(st.img, r.stamp(st), createdBy, rec.Layer == nil)
}
