package builder

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	digest "github.com/opencontainers/go-digest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// describe renders what a build would do with a Dockerfile without touching
// a filesystem: the plan, every instruction after expansion and the final
// config of every stage.
func describe(name string, data []byte, o PlanOptions) string {
	df, err := Parse(name, data)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	plan, err := NewPlan(df, o)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b strings.Builder
	for _, w := range df.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	fmt.Fprintf(&b, "target: %s\nunused args: %v\nlevels:", plan.Target.Label(), plan.UnusedArgs)
	for _, l := range plan.Levels {
		var names []string
		for _, s := range l {
			names = append(names, s.Label())
		}
		fmt.Fprintf(&b, " [%s]", strings.Join(names, " "))
	}
	b.WriteString("\n")
	r := &buildRun{o: Options{BuildArgs: o.BuildArgs}, plan: plan}
	for _, s := range plan.Stages {
		var deps []string
		for _, d := range s.Deps {
			deps = append(deps, d.Label())
		}
		fmt.Fprintf(&b, "\nstage %s: base=%q deps=%v images=%v\n", s.Label(), s.Base, deps, s.Images)
		st := &stageState{img: scratchImage(), args: newVars(), lex: shell.NewLex(df.Escape), stage: s}
		for _, c := range s.Stage.Commands {
			fmt.Fprintf(&b, "  %s\n", describeCommand(r, st, c))
		}
		st.img.History = nil
		cfg, _ := json.Marshal(st.img.Config)
		fmt.Fprintf(&b, "  config: %s\n", cfg)
	}
	return b.String()
}

func describeCommand(r *buildRun, st *stageState, c instructions.Command) string {
	line := c.Location()[0].Start.Line
	if a, ok := c.(*instructions.ArgCommand); ok {
		if err := r.arg(st, a); err != nil {
			return fmt.Sprintf("%d ARG error: %v", line, err)
		}
		return fmt.Sprintf("%d ARG -> %v", line, st.args.List())
	}
	if err := expandCommand(st, c); err != nil {
		return fmt.Sprintf("%d %s error: %v", line, c.Name(), err)
	}
	if meta, err := applyMeta(st, c); meta || err != nil {
		j, _ := json.Marshal(c)
		return fmt.Sprintf("%d %s %s err=%v", line, strings.ToUpper(c.Name()), j, err)
	}
	switch c := c.(type) {
	case *instructions.RunCommand:
		args, script, err := runArgs(st.img, c)
		mounts, _ := json.Marshal(instructions.GetMounts(c))
		return fmt.Sprintf("%d RUN %q script=%v network=%q mounts=%s env=%v err=%v", line, args, script != nil,
			instructions.GetNetwork(c), mounts, r.runEnv(st, true), err)
	case *instructions.WorkdirCommand:
		wd, _ := destination(c.Path+"/", orRoot(st.img.Config.WorkingDir))
		st.img.Config.WorkingDir = wd
		return fmt.Sprintf("%d WORKDIR %s", line, wd)
	}
	j, _ := json.Marshal(c)
	return fmt.Sprintf("%d %s %s", line, strings.ToUpper(c.Name()), j)
}

// TestGoldenPlans parses and expands every testdata/plan/*.Dockerfile. A
// first line "# opts: {json PlanOptions}" sets target and build args.
func TestGoldenPlans(t *testing.T) {
	files, _ := filepath.Glob("testdata/plan/*.Dockerfile")
	if len(files) == 0 {
		t.Fatal("no golden cases")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var o PlanOptions
			for _, l := range strings.Split(string(data), "\n") {
				if rest, ok := strings.CutPrefix(l, "# opts: "); ok {
					if err := json.Unmarshal([]byte(rest), &o); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := describe(filepath.Base(f), data, o)
			golden := strings.TrimSuffix(f, ".Dockerfile") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("mismatch for %s\n--- got\n%s\n--- want\n%s", f, got, want)
			}
		})
	}
}

func TestPlanTargetAndLevels(t *testing.T) {
	df, err := Parse("Dockerfile", []byte(`FROM busybox AS a
FROM busybox AS b
FROM a AS c
COPY --from=b /x /x
FROM busybox AS d
RUN --mount=type=bind,from=c,target=/c true
FROM scratch AS unrelated
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(df, PlanOptions{Target: "D"})
	if err != nil {
		t.Fatal(err)
	}
	var levels []string
	for _, l := range p.Levels {
		var names []string
		for _, s := range l {
			names = append(names, s.Name)
		}
		levels = append(levels, strings.Join(names, ","))
	}
	if got := strings.Join(levels, " | "); got != "a,b | c | d" {
		t.Errorf("levels %q", got)
	}
	if _, err := NewPlan(df, PlanOptions{Target: "nope"}); err == nil {
		t.Error("unknown target accepted")
	}
}

func TestParseErrorsHaveLines(t *testing.T) {
	for src, want := range map[string]string{
		"FROM busybox\nRUN true\nFROOM x\n":  "Dockerfile:3:",
		"FROM busybox\nCOPY onlyone\n":       "Dockerfile:2:",
		"ARG X\n":                            "no build stage",
		"FROM busybox\nCOPY --from=$X a b\n": "Dockerfile:2:",
		"FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n": "Dockerfile:2:",
		"FROM --platform=linux/s390x busybox\n":                       "host platform",
		"# check=error=true\nFROM busybox as Build\n":                 "lint checks failed",
	} {
		df, err := Parse("Dockerfile", []byte(src))
		if err == nil {
			_, err = NewPlan(df, PlanOptions{})
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
}

func TestCacheKeyChaining(t *testing.T) {
	a := cacheKey("", "image", "sha256:1")
	b := cacheKey(a, "RUN", []string{"sh", "-c", "x"})
	if b == cacheKey(a, "RUN", []string{"sh", "-c", "y"}) {
		t.Error("different commands share a key")
	}
	if b != cacheKey(a, "RUN", []string{"sh", "-c", "x"}) {
		t.Error("key not deterministic")
	}
	if b == cacheKey(cacheKey("", "image", "sha256:2"), "RUN", []string{"sh", "-c", "x"}) {
		t.Error("key ignores the parent")
	}
	// parts are delimited: moving a boundary changes the key
	if cacheKey("", "ab", "c") == cacheKey("", "a", "bc") {
		t.Error("parts not delimited")
	}
	dir := t.TempDir()
	idx, err := openCacheIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := &Layer{Digest: "sha256:aa", DiffID: "sha256:bb"}
	if err := idx.put(b, &cacheRecord{Layer: l}); err != nil {
		t.Fatal(err)
	}
	idx2, _ := openCacheIndex(dir) // as after a restart
	rec, ok := idx2.get(b)
	if !ok || rec.Layer == nil || rec.Layer.DiffID != "sha256:bb" {
		t.Errorf("persisted record %+v %v", rec, ok)
	}
	if _, ok := idx2.get(a); ok {
		t.Error("hit for a key never stored")
	}
}

func TestSourceDateEpoch(t *testing.T) {
	ts, err := sourceDateEpoch(map[string]string{"SOURCE_DATE_EPOCH": "10"})
	if err != nil || ts.Unix() != 10 {
		t.Errorf("%v %v", ts, err)
	}
	if _, err := sourceDateEpoch(map[string]string{"SOURCE_DATE_EPOCH": "x"}); err == nil {
		t.Error("bad epoch accepted")
	}
}

func TestPrune(t *testing.T) {
	root := t.TempDir()
	have := Layer{Digest: "sha256:11", DiffID: "sha256:12"}
	b, err := New(root, fakeLayers{have.Digest: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.cache.put(cacheKey("", "kept"), &cacheRecord{Layer: &have})
	b.cache.put(cacheKey("", "empty"), &cacheRecord{})
	b.cache.put(cacheKey("", "gone"), &cacheRecord{Layer: &Layer{Digest: "sha256:99"}})
	os.MkdirAll(filepath.Join(root, "cachemounts", "x"), 0o755)
	st, err := b.Prune(context.Background(), false)
	if err != nil || st.Records != 1 {
		t.Fatalf("prune: %+v %v", st, err)
	}
	if _, ok := b.cache.get(cacheKey("", "kept")); !ok {
		t.Error("a live record was pruned")
	}
	st, _ = b.Prune(context.Background(), true)
	if st.Records != 2 || st.CacheMounts != 1 {
		t.Errorf("prune --all: %+v", st)
	}
}

// fakeLayers is a Store that only answers HasLayer.
type fakeLayers map[digest.Digest]bool

func (f fakeLayers) HasLayer(_ context.Context, l Layer) bool { return f[l.Digest] }
func (fakeLayers) Image(context.Context, string) (*BaseImage, error) {
	return nil, ErrNotFound
}
func (fakeLayers) Pull(context.Context, string) (*BaseImage, error) { return nil, ErrNotFound }
func (fakeLayers) Prepare(context.Context, []Layer) (Rootfs, error) { return nil, ErrNotFound }
func (fakeLayers) PutImage(context.Context, []byte, []Layer, []string) (digest.Digest, error) {
	return "", ErrNotFound
}
