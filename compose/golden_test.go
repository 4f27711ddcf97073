package compose

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var configHash = regexp.MustCompile(`"ConfigHash": "[0-9a-f]{64}"`)

// goldenCase is testdata/golden/<name>/case.json: the command line and
// environment the case is loaded with. The environment is exactly Env, so
// the host's never leaks into a golden file.
type goldenCase struct {
	Dir              string // where the command runs, relative to the case
	Files            []string
	ProjectName      string
	ProjectDirectory string
	Profiles         []string
	EnvFiles         []string
	NoInterpolate    bool
	Env              []string
}

// TestGolden loads every case under testdata/golden and compares the
// desired state it produces (or the error) with expected.golden.
func TestGolden(t *testing.T) {
	root, err := filepath.Abs("testdata/golden")
	if err != nil {
		t.Fatal(err)
	}
	cases, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		t.Run(c.Name(), func(t *testing.T) {
			dir := filepath.Join(root, c.Name())
			got := renderCase(t, dir)
			got = strings.ReplaceAll(got, root, "$TESTDATA")
			// A config hash covers absolute paths (bind sources, the
			// working dir): it differs in every checkout. What moves it
			// and what does not is hash_test.go's business.
			got = configHash.ReplaceAllString(got, `"ConfigHash": "<hash>"`)
			golden := filepath.Join(dir, "expected.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./compose -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("desired state differs from %s (rerun with -update and review the diff):\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

func readCase(t *testing.T, dir string) goldenCase {
	var gc goldenCase
	b, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err == nil {
		if err := json.Unmarshal(b, &gc); err != nil {
			t.Fatalf("case.json: %v", err)
		}
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if gc.Env == nil {
		gc.Env = []string{}
	}
	return gc
}

func renderCase(t *testing.T, dir string) string {
	gc := readCase(t, dir)
	o := Options{
		Dir:              filepath.Join(dir, gc.Dir),
		Files:            gc.Files,
		ProjectName:      gc.ProjectName,
		ProjectDirectory: gc.ProjectDirectory,
		Profiles:         gc.Profiles,
		EnvFiles:         gc.EnvFiles,
		NoInterpolate:    gc.NoInterpolate,
		Environ:          gc.Env,
	}
	p, err := Load(context.Background(), o)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	d, err := p.Desired()
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	out := struct {
		Unimplemented []string
		Desired       any
	}{p.Unimplemented, d}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// lineDiff shows the first differing lines, enough to see what moved.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + itoa(int64(i+1)) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
			shown++
		}
	}
	return b.String()
}
