package compose

import (
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// third_party/reference compiles its expressions lazily (PATCH.md): every
// kind of reference still parses, and is refused, as upstream's does.
func TestReferenceParsing(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox:latest",
		"library/ubuntu:22.04":            "docker.io/library/ubuntu:22.04",
		"localhost:5000/foo/bar:tag":      "localhost:5000/foo/bar:tag",
		"[::1]:5000/x/y":                  "[::1]:5000/x/y:latest",
		"registry.example/app@" + digest:  "registry.example/app@" + digest,
		"app:1.0@" + digest:               "docker.io/library/app@" + digest,
		"name/Uppercase":                  "error",
		"app:" + strings.Repeat("t", 129): "error",
		"app@sha256:short":                "error",
		"-leading/dash":                   "error",
	} {
		got, err := reference.ParseDockerRef(in)
		if want == "error" {
			if err == nil {
				t.Errorf("ParseDockerRef(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got.String() != want {
			t.Errorf("ParseDockerRef(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if !reference.TagRegexp.MatchString("v1.2-rc") || reference.TagRegexp.Regexp().MatchString("---") {
		t.Error("TagRegexp: v1.2-rc is a tag, --- is not")
	}
}
