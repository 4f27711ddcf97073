package native

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/state"
)

func TestProcessArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"default"}}
	cases := []struct {
		name    string
		c       state.ContainerSpec
		want    []string
		invalid bool
	}{
		{"image defaults", state.ContainerSpec{}, []string{"/ep", "default"}, false},
		{"command replaces cmd", state.ContainerSpec{Command: []string{"x"}}, []string{"/ep", "x"}, false},
		{"entrypoint drops image cmd", state.ContainerSpec{Entrypoint: []string{"/other"}}, []string{"/other"}, false},
		{"both", state.ContainerSpec{Entrypoint: []string{"sh", "-c"}, Command: []string{"echo"}}, []string{"sh", "-c", "echo"}, false},
		{"empty entrypoint and no command", state.ContainerSpec{Entrypoint: []string{}}, nil, true},
	}
	for _, tc := range cases {
		got, err := processArgs(tc.c, img)
		if tc.invalid {
			if !errors.Is(err, driver.ErrInvalid) {
				t.Errorf("%s: want ErrInvalid, got %v %v", tc.name, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/img", "A=1", "B=2"}, []string{"B=3", "C=4"}, "HOSTNAME=h")
	want := []string{"PATH=/img", "A=1", "B=3", "C=4", "HOSTNAME=h"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
	got = mergeEnv(nil, []string{"X=1"})
	if !strings.HasPrefix(got[len(got)-1], "PATH=") {
		t.Fatalf("no default PATH: %q", got)
	}
}

func TestCapabilities(t *testing.T) {
	caps, err := capabilities(state.ContainerSpec{CapAdd: []string{"net_admin"}, CapDrop: []string{"CAP_MKNOD", "kill"}})
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, c := range caps {
		has[c] = true
	}
	if !has["CAP_NET_ADMIN"] || has["CAP_MKNOD"] || has["CAP_KILL"] || !has["CAP_CHOWN"] || has["CAP_SYS_ADMIN"] {
		t.Fatalf("caps: %v", caps)
	}
	caps, _ = capabilities(state.ContainerSpec{CapDrop: []string{"ALL"}, CapAdd: []string{"CHOWN"}})
	if !reflect.DeepEqual(caps, []string{"CAP_CHOWN"}) {
		t.Fatalf("drop ALL add CHOWN: %v", caps)
	}
	if _, err := capabilities(state.ContainerSpec{CapAdd: []string{"CAP_BOGUS"}}); !errors.Is(err, driver.ErrInvalid) {
		t.Fatalf("unknown capability: %v", err)
	}
	caps, _ = capabilities(state.ContainerSpec{Privileged: true})
	if len(caps) != len(runtime.AllCapabilities()) {
		t.Fatalf("privileged has %d caps", len(caps))
	}
}

func TestBuildSpec(t *testing.T) {
	c := state.ContainerSpec{
		Service: "web", Command: []string{"httpd"}, User: "www", ReadOnly: true,
		Resources:   state.Resources{MemoryLimit: 64 << 20, NanoCPUs: 500_000_000, PidsLimit: 100},
		Ulimits:     map[string]state.Ulimit{"nofile": {Soft: 1024, Hard: 2048}},
		SecurityOpt: []string{"no-new-privileges:true"},
		NetworkMode: "host",
	}
	s, err := buildSpec(specInput{Container: c, Image: ocispec.ImageConfig{WorkingDir: "/srv"}, Hostname: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.Cwd != "/srv" || !s.Root.Readonly || !s.Process.NoNewPrivileges || s.Hostname != "h1" {
		t.Fatalf("process/root: %+v %+v", s.Process, s.Root)
	}
	if *s.Linux.Resources.Memory.Limit != 64<<20 || *s.Linux.Resources.CPU.Quota != 50000 || *s.Linux.Resources.Pids.Limit != 100 {
		t.Fatalf("resources: %+v", s.Linux.Resources)
	}
	if s.Process.Rlimits[0].Type != "RLIMIT_NOFILE" || s.Process.Rlimits[0].Hard != 2048 {
		t.Fatalf("rlimits: %+v", s.Process.Rlimits)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == "network" {
			t.Fatal("host network mode must not get a network namespace")
		}
	}
	if len(s.Linux.MaskedPaths) == 0 || s.Linux.Resources.Devices[0].Allow || s.Linux.Seccomp == nil {
		t.Fatal("default hardening missing")
	}
	if _, err := buildSpec(specInput{Container: state.ContainerSpec{Command: []string{"x"}, Ulimits: map[string]state.Ulimit{"bogus": {}}}}); !errors.Is(err, driver.ErrInvalid) {
		t.Fatalf("unknown ulimit: %v", err)
	}
}
