package builder

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// PlanOptions select what to build from a Dockerfile.
type PlanOptions struct {
	Target    string            // stage name; "" is the last stage
	BuildArgs map[string]string // --build-arg values
}

// Plan is the part of a Dockerfile a build needs: the stages the target
// depends on, in Dockerfile order, grouped into levels whose stages depend
// only on stages of earlier levels and can therefore build in parallel.
type Plan struct {
	Dockerfile *Dockerfile
	Stages     []*PlannedStage
	Levels     [][]*PlannedStage
	Target     *PlannedStage
	GlobalArgs *vars
	BuildArgs  map[string]string
	// UnusedArgs are --build-arg names no ARG of a built stage declares.
	UnusedArgs []string
}

// PlannedStage is one stage with its base and its dependencies resolved.
type PlannedStage struct {
	Index     int
	Name      string // lower-cased "AS" name, "" when unnamed
	Base      string // expanded FROM: an image reference or "scratch"
	BaseStage *PlannedStage
	Deps      []*PlannedStage // stages it reads: FROM, COPY --from, RUN --mount from=
	Images    []string        // images it reads besides its base: COPY --from=image
	Stage     *instructions.Stage
}

// Label is how the build output names a stage.
func (s *PlannedStage) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return "stage-" + strconv.Itoa(s.Index)
}

// NewPlan resolves global ARGs, stage bases and dependencies, and prunes
// stages the target does not need.
func NewPlan(df *Dockerfile, o PlanOptions) (*Plan, error) {
	p := &Plan{Dockerfile: df, BuildArgs: o.BuildArgs}
	targetIdx := len(df.Stages) - 1
	if o.Target != "" {
		idx := stageIndex(df.Stages, strings.ToLower(o.Target), len(df.Stages))
		if idx < 0 {
			return nil, &Error{File: df.Name, Err: fmt.Errorf("target stage %q could not be found", o.Target)}
		}
		targetIdx = idx
	}
	global, err := globalArgs(df, df.Stages[targetIdx].Name, o.BuildArgs)
	if err != nil {
		return nil, err
	}
	p.GlobalArgs = global
	all := make([]*PlannedStage, len(df.Stages))
	for i := range df.Stages {
		ps, err := planStage(df, i, all, global)
		if err != nil {
			return nil, err
		}
		all[i] = ps
	}
	p.Target = all[targetIdx]
	p.Stages = needed(all, p.Target)
	p.Levels = levels(p.Stages)
	p.UnusedArgs = unusedArgs(p, o.BuildArgs)
	return p, nil
}

// stageIndex finds a stage by name or number among the first n stages.
func stageIndex(stages []instructions.Stage, ref string, n int) int {
	for i := n - 1; i >= 0; i-- {
		if stages[i].Name != "" && stages[i].Name == ref {
			return i
		}
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < n {
		return i
	}
	return -1
}

// globalArgs evaluates the ARGs before the first FROM: a --build-arg wins
// over the default, defaults may use earlier global ARGs.
func globalArgs(df *Dockerfile, target string, buildArgs map[string]string) (*vars, error) {
	v := predefinedArgs(target, buildArgs)
	lex := shell.NewLex(df.Escape)
	for _, cmd := range df.MetaArgs {
		for _, a := range cmd.Args {
			if val, ok := buildArgs[a.Key]; ok {
				v.Set(a.Key, val)
				continue
			}
			if a.Value == nil {
				continue
			}
			val, _, err := lex.ProcessWord(*a.Value, v)
			if err != nil {
				return nil, errAt(df.Name, cmd.Location(), "ARG %s: %v", a.Key, err)
			}
			v.Set(a.Key, val)
		}
	}
	return v, nil
}

func planStage(df *Dockerfile, i int, all []*PlannedStage, global *vars) (*PlannedStage, error) {
	st := &df.Stages[i]
	lex := shell.NewLex(df.Escape)
	base, _, err := lex.ProcessWord(st.BaseName, global)
	if err != nil {
		return nil, errAt(df.Name, st.Location, "FROM: %v", err)
	}
	if base == "" {
		return nil, errAt(df.Name, st.Location, "base name (%s) should not be blank", st.BaseName)
	}
	if st.Platform != "" {
		plat, _, err := lex.ProcessWord(st.Platform, global)
		if err != nil {
			return nil, errAt(df.Name, st.Location, "FROM --platform: %v", err)
		}
		if !platformMatches(plat) {
			return nil, errAt(df.Name, st.Location, "FROM --platform=%s: berth builds only for the host platform %s", plat, global.vals["BUILDPLATFORM"])
		}
	}
	ps := &PlannedStage{Index: i, Name: st.Name, Base: base, Stage: st}
	if j := stageIndex(df.Stages, strings.ToLower(base), i); j >= 0 && df.Stages[j].Name == strings.ToLower(base) {
		ps.BaseStage = all[j]
		ps.addDep(all[j])
	}
	for _, c := range st.Commands {
		if err := ps.addCommandDeps(df, c, all); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

func (ps *PlannedStage) addDep(d *PlannedStage) {
	for _, x := range ps.Deps {
		if x == d {
			return
		}
	}
	ps.Deps = append(ps.Deps, d)
}

// addCommandDeps records the stages or images a COPY --from or a RUN
// --mount from= reads. Like buildkit, --from is not expanded.
func (ps *PlannedStage) addCommandDeps(df *Dockerfile, c instructions.Command, all []*PlannedStage) error {
	var froms []string
	switch c := c.(type) {
	case *instructions.CopyCommand:
		froms = append(froms, c.From)
	case *instructions.RunCommand:
		for _, m := range instructions.GetMounts(c) {
			froms = append(froms, m.From)
		}
	}
	for _, from := range froms {
		if from == "" {
			continue
		}
		if strings.Contains(from, "$") {
			return errAt(df.Name, c.Location(), "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
		}
		j := stageIndex(df.Stages, strings.ToLower(from), ps.Index)
		if j >= 0 {
			ps.addDep(all[j])
			continue
		}
		if stageIndex(df.Stages, strings.ToLower(from), len(df.Stages)) >= 0 {
			return errAt(df.Name, c.Location(), "--from=%s refers to a later stage or to itself", from)
		}
		ps.Images = append(ps.Images, from)
	}
	return nil
}

// needed returns the target and everything it depends on, in file order.
func needed(all []*PlannedStage, target *PlannedStage) []*PlannedStage {
	keep := map[*PlannedStage]bool{}
	var walk func(s *PlannedStage)
	walk = func(s *PlannedStage) {
		if keep[s] {
			return
		}
		keep[s] = true
		for _, d := range s.Deps {
			walk(d)
		}
	}
	walk(target)
	var out []*PlannedStage
	for _, s := range all {
		if keep[s] {
			out = append(out, s)
		}
	}
	return out
}

// levels groups stages by the length of their longest dependency chain.
// Dependencies always point to earlier stages, so one pass suffices.
func levels(stages []*PlannedStage) [][]*PlannedStage {
	depth := map[*PlannedStage]int{}
	var out [][]*PlannedStage
	for _, s := range stages {
		d := 0
		for _, dep := range s.Deps {
			if depth[dep]+1 > d {
				d = depth[dep] + 1
			}
		}
		depth[s] = d
		for len(out) <= d {
			out = append(out, nil)
		}
		out[d] = append(out[d], s)
	}
	return out
}

func unusedArgs(p *Plan, buildArgs map[string]string) []string {
	declared := map[string]bool{}
	for _, a := range p.Dockerfile.MetaArgs {
		for _, kv := range a.Args {
			declared[kv.Key] = true
		}
	}
	for _, s := range p.Stages {
		for _, c := range s.Stage.Commands {
			if a, ok := c.(*instructions.ArgCommand); ok {
				for _, kv := range a.Args {
					declared[kv.Key] = true
				}
			}
		}
	}
	var out []string
	for _, k := range sortedKeys(buildArgs) {
		if !declared[k] && !proxyArgs[k] && k != "SOURCE_DATE_EPOCH" {
			if _, pre := p.GlobalArgs.vals[k]; !pre {
				out = append(out, k)
			}
		}
	}
	return out
}
