package main

import (
	"regexp"
	"slices"
	"testing"

	"github.com/berth-dev/berth/state"
)

// TestOneOffSpec checks how run changes a service's container: compose's
// one-off name and label, no restart, no service ports unless asked, the
// command line's command, entrypoint, environment, mounts and ports.
func TestOneOffSpec(t *testing.T) {
	want := &state.Desired{Project: "p", WorkingDir: "/proj",
		Volumes: map[string]state.VolumeSpec{"data": {Name: "p_data"}}}
	svc := &state.Service{Name: "web", Replicas: 3, Container: state.ContainerSpec{
		Project: "p", Restart: "always", Env: []string{"A=1", "B=2"},
		Ports: []state.Port{{HostPort: 80, ContainerPort: 80, Protocol: "tcp"}},
	}}
	o := runOptions{env: []string{"B=3", "C=4"}, entrypoint: "sh -c", volumes: []string{"./src:/src:ro", "data:/data"},
		publish: []string{"127.0.0.1:8080:80/udp"}, labels: []string{"x=y"}}
	s, err := o.oneOffSpec(want, svc, []string{"echo hi"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^p-web-run-[0-9a-f]{12}$`).MatchString(s.Name) || !s.OneOff {
		t.Errorf("name %q oneoff %v", s.Name, s.OneOff)
	}
	if s.Labels[state.LabelOneOff] != "True" || s.Labels[state.LabelService] != "web" || s.Labels["x"] != "y" {
		t.Errorf("labels %v", s.Labels)
	}
	if s.Restart != "" {
		t.Errorf("restart %q", s.Restart)
	}
	if !slices.Equal(s.Entrypoint, []string{"sh", "-c"}) || !slices.Equal(s.Command, []string{"echo hi"}) {
		t.Errorf("entrypoint %q command %q", s.Entrypoint, s.Command)
	}
	if !slices.Equal(s.Env, []string{"A=1", "B=3", "C=4"}) {
		t.Errorf("env %q", s.Env)
	}
	wantMounts := []state.Mount{
		{Type: state.MountBind, Source: "/proj/src", Target: "/src", ReadOnly: true, CreateHostPath: true},
		{Type: state.MountVolume, Source: "p_data", Target: "/data"},
	}
	if !slices.Equal(s.Mounts, wantMounts) {
		t.Errorf("mounts %+v", s.Mounts)
	}
	if !slices.Equal(s.Ports, []state.Port{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "udp"}}) {
		t.Errorf("ports %+v (the service's must be dropped without --service-ports)", s.Ports)
	}
	if svc.Container.Restart != "always" || len(svc.Container.Env) != 2 {
		t.Errorf("oneOffSpec changed the service itself: %+v", svc.Container)
	}
	s, _ = (runOptions{name: "mine", servicePorts: true, entrypoint: "/bin/true"}).oneOffSpec(want, svc, nil, true)
	if s.Name != "mine" || len(s.Ports) != 1 || !s.Tty || s.Command == nil || len(s.Command) != 0 {
		t.Errorf("--name --service-ports --entrypoint: %+v", s)
	}
}

func TestProjectFlagBeforeRun(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"-p", "demo", "run", "-p", "80:80", "web"}, []string{"--project-name=demo", "run", "-p", "80:80", "web"}},
		{[]string{"-pdemo", "-f", "x.yml", "run", "web"}, []string{"--project-name=demo", "-f", "x.yml", "run", "web"}},
		{[]string{"-p", "demo", "up", "-d"}, []string{"-p", "demo", "up", "-d"}},
		{[]string{"run", "-p", "80:80", "web"}, []string{"run", "-p", "80:80", "web"}},
	} {
		if got := projectFlagBeforeRun(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}
