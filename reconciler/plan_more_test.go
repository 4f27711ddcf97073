package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

func TestPlanErrors(t *testing.T) {
	cases := []struct {
		name string
		want *state.Desired
		o    Options
		err  string
	}{
		{"cycle", desired(svc("a", "app:1", "h", 1, dependsOn("b", state.ConditionStarted)),
			svc("b", "app:1", "h", 1, dependsOn("a", state.ConditionStarted))), Options{}, "dependency cycle: a -> b -> a"},
		{"undefined required dependency", desired(svc("a", "app:1", "h", 1, dependsOn("nope", state.ConditionStarted))),
			Options{}, "service a depends on undefined service nope"},
		{"undefined namespace", desired(svc("a", "app:1", "h", 1, func(s *state.Service) { s.Container.IPC = "service:nope" })),
			Options{}, "service a shares a namespace with undefined service nope"},
		{"unknown target", desired(svc("a", "app:1", "h", 1)), Options{Services: []string{"b"}}, "no such service: b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanUp(tc.want, observed(), tc.o)
			if err == nil || err.Error() != tc.err {
				t.Errorf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestPlanOpPayloads(t *testing.T) {
	three := 3 * time.Second
	want := desired(svc("web", "app:1", "hweb", 1, func(s *state.Service) { s.Container.StopGracePeriod = time.Minute }))
	p, err := PlanUp(want, observed(ctr("web", 1, "old")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop, create := p.Ops[1], p.Ops[2]
	if stop.Kind != StopContainer || stop.Timeout != time.Minute || stop.ContainerID != "id-web-1" {
		t.Errorf("stop op = %+v, want the service's grace period on id-web-1", stop)
	}
	c := create.Container
	if c.Labels[state.LabelSandboxFrom] != "id-web-1" {
		t.Errorf("the successor does not take over the network sandbox of id-web-1: %v", c.Labels)
	}
	if create.Kind != CreateContainer || c.Name != "demo-web-1" || c.ImageDigest != appDigest ||
		c.Labels[state.LabelConfigHash] != "hweb" || c.Labels[state.LabelImage] != appDigest || c.Labels[state.LabelNumber] != "1" {
		t.Errorf("create op spec = %+v", c)
	}
	if p.Ops[4].IDFrom != create.ID {
		t.Errorf("start acts on op #%d, want the create #%d", p.Ops[4].IDFrom, create.ID)
	}
	p, _ = PlanUp(want, observed(ctr("web", 1, "old")), Options{Timeout: &three})
	if p.Ops[1].Timeout != three {
		t.Errorf("timeout option not applied: %v", p.Ops[1].Timeout)
	}
	// A pending image feeds the create through DigestFrom.
	obs := observed()
	obs.Images = nil
	p, _ = PlanUp(want, obs, Options{})
	if p.Ops[0].Kind != EnsureImage || p.Ops[1].DigestFrom != p.Ops[0].ID || p.Ops[1].Container.ImageDigest != "" {
		t.Errorf("create does not take its digest from the EnsureImage op:\n%s", p)
	}
	// start-first labels the replacement with the name it replaces.
	want = desired(svc("web", "app:1", "hweb", 1, startFirst))
	p, _ = PlanUp(want, observed(ctr("web", 1, "old")), Options{})
	if c := p.Ops[0].Container; c.Name != "id-web-1_demo-web-1" || c.Labels[state.LabelReplace] != "demo-web-1" {
		t.Errorf("start-first replacement spec = %s / %v", c.Name, c.Labels)
	}
	if w := p.Ops[2]; w.Kind != WaitContainer || w.Condition != driver.WaitRunning {
		t.Errorf("start-first without healthcheck waits for %q", w.Condition)
	}
}

func TestPlanRefreshImages(t *testing.T) {
	want := desired(svc("web", "app:1", "hweb", 1, func(s *state.Service) { s.Image.PullPolicy = "always" }))
	p, _ := PlanUp(want, observed(ctr("web", 1, "hweb")), Options{RefreshImages: true})
	if got := p.String(); got != "[] -> #1 image:app:1 EnsureImage (refresh)\n" {
		t.Errorf("plan:\n%s", got)
	}
	if p, _ := PlanUp(want, observed(ctr("web", 1, "hweb")), Options{}); !p.Empty() {
		t.Errorf("without RefreshImages a present image is not pulled again:\n%s", p)
	}
}

func TestPlanDown(t *testing.T) {
	obs := stackUp(state.Container{ID: "id-run", Name: "demo-web-run-1", Project: proj, Service: "web", OneOff: true,
		Status: state.StatusRunning, Networks: []string{proj + "_default"}})
	// The depends_on label orders stops when the desired state is unknown.
	for i := range obs.Containers {
		switch obs.Containers[i].Service {
		case "web":
			obs.Containers[i].Labels = map[string]string{state.LabelDependsOn: "db:service_healthy:false,migrate:service_completed_successfully:false"}
		case "migrate":
			obs.Containers[i].Labels = map[string]string{state.LabelDependsOn: "db:service_healthy:false"}
		}
	}
	p, err := PlanDown(obs, DownOptions{Volumes: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `
[] -> #1 service:web:0+run:demo-web-run-1 StopContainer (down)
[] -> #2 service:web:1 StopContainer (down)
[] -> #3 service:web:2 StopContainer (down)
[1 2 3] -> #4 service:db:1 StopContainer (down)
[1] -> #5 service:web:0+run:demo-web-run-1 RemoveContainer (down)
[4] -> #6 service:db:1 RemoveContainer (down)
[] -> #7 service:migrate:1 RemoveContainer (down)
[2] -> #8 service:web:1 RemoveContainer (down)
[3] -> #9 service:web:2 RemoveContainer (down)
[5 6 7 8 9] -> #10 network:demo_default RemoveNetwork (down)
[5 6 7 8 9] -> #11 volume:demo_data RemoveVolume (down -v)
`
	if got := p.String(); got != strings.TrimPrefix(want, "\n") {
		t.Errorf("down plan:\n%s\nwant:\n%s", got, strings.TrimPrefix(want, "\n"))
	}
	// With the desired state, orphans stay (and so does their network).
	p, _ = PlanDown(observed(ctr("web", 1, "hweb"), ctr("old", 1, "h")), DownOptions{Desired: desired(svc("web", "app:1", "hweb", 1))})
	want = `
[] -> #1 service:web:1 StopContainer (down)
[1] -> #2 service:web:1 RemoveContainer (down)
`
	if got := p.String(); got != strings.TrimPrefix(want, "\n") || len(p.Warnings) != 2 {
		t.Errorf("down plan:\n%s\nwarnings: %q", got, p.Warnings)
	}
}

func TestPlanStaleNamespaceJoin(t *testing.T) {
	at := func(sec int) func(*state.Container) {
		return func(c *state.Container) { c.Created = time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC) }
	}
	want := desired(
		svc("web", "app:1", "hweb", 1),
		svc("sidecar", "app:1", "hside", 1, func(s *state.Service) { s.Container.NetworkMode, s.Container.Networks = "service:web", nil }),
	)
	// web was recreated (at 20s) after the sidecar joined its namespace (10s).
	obs := observed(ctr("web", 1, "hweb", at(20)), ctr("sidecar", 1, "hside", at(10), func(c *state.Container) { c.Networks = nil }))
	p, err := PlanUp(want, obs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	exp := `[] -> #1 service:sidecar:1 RenameContainer (set aside: dependency web recreated)
[1] -> #2 service:sidecar:1 StopContainer (dependency web recreated)
[2] -> #3 service:sidecar:1 CreateContainer (dependency web recreated)
[2 3?] -> #4 service:sidecar:1 RemoveContainer (dependency web recreated)
[3] -> #5 service:sidecar:1 StartContainer (created)
`
	if got := p.String(); got != exp {
		t.Errorf("plan:\n%s\nwant:\n%s", got, exp)
	}
	obs = observed(ctr("web", 1, "hweb", at(5)), ctr("sidecar", 1, "hside", at(10), func(c *state.Container) { c.Networks = nil }))
	if p, _ := PlanUp(want, obs, Options{}); !p.Empty() {
		t.Errorf("sidecar newer than web is recreated:\n%s", p)
	}
}

func TestPlanDeterministic(t *testing.T) {
	states := convergenceStates()
	for i, want := range states {
		var first string
		for range 20 {
			p, err := PlanUp(want, stackUp(ctr("sidecar", 1, "x"), ctr("worker", 2, "x")), Options{RemoveOrphans: true})
			if err != nil {
				t.Fatal(err)
			}
			if first == "" {
				first = p.String()
			} else if p.String() != first {
				t.Fatalf("state %d: plan differs between runs:\n%s\nvs\n%s", i, first, p)
			}
		}
	}
}

// TestPlanLostAsideRename: a power cut lost the rename that set the old
// container aside (it is not flushed), so it and its successor both hold
// the replica's name. The newer one, up to date, stays; the old one goes.
func TestPlanLostAsideRename(t *testing.T) {
	want := desired(svc("web", "app:1", "hweb", 1))
	old := ctr("web", 1, "hold", exited(137), func(c *state.Container) {
		c.ID, c.Created = "id-old", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	})
	succ := ctr("web", 1, "hweb", func(c *state.Container) {
		c.ID, c.Created = "id-new", time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)
	})
	for _, obs := range []*state.Observed{observed(old, succ), observed(succ, old)} {
		p, err := PlanUp(want, obs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		exp := "[] -> #1 service:web:1 RemoveContainer (duplicate of replica 1)\n"
		if got := p.String(); got != exp || p.Ops[0].ContainerID != "id-old" {
			t.Errorf("plan:\n%s\nwant the old container removed:\n%s", got, exp)
		}
	}
}
