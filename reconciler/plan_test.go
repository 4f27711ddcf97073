package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/state"
)

const (
	appDigest = "sha256:app1"
	pgDigest  = "sha256:pg16"
)

// ctr is an observed container of the demo project, running, up to date
// with hash and the app image unless mods say otherwise.
func ctr(service string, n int, hash string, mods ...func(*state.Container)) state.Container {
	c := state.Container{
		ID: "id-" + service + "-" + itoa(n), Name: state.ContainerName(proj, service, n), Project: proj,
		Service: service, Number: n, ConfigHash: hash, ImageDigest: appDigest, Image: "app:1",
		Status: state.StatusRunning, Networks: []string{proj + "_default"},
	}
	for _, m := range mods {
		m(&c)
	}
	return c
}

func exited(code int) func(*state.Container) {
	return func(c *state.Container) { c.Status, c.ExitCode = state.StatusExited, code }
}

func health(h string) func(*state.Container) { return func(c *state.Container) { c.Health = h } }
func pgImage(c *state.Container)             { c.ImageDigest, c.Image = pgDigest, "pg:16" }

func observed(cs ...state.Container) *state.Observed {
	return &state.Observed{
		Project:    proj,
		Containers: cs,
		Networks:   []state.Network{{Name: proj + "_default", Hash: "net1"}},
		Volumes:    []state.Volume{{Name: proj + "_data", Hash: "vol1"}},
		Images:     []state.ImageRef{{Ref: "app:1", Digest: appDigest}, {Ref: "pg:16", Digest: pgDigest}},
	}
}

// stack is db (healthchecked, with a volume) <- migrate (one-shot) <- web.
func stack(mods ...func(*state.Desired)) *state.Desired {
	d := desired(
		svc("db", "pg:16", "hdb", 1, healthcheck, volumeMount("data", "/data")),
		svc("migrate", "app:1", "hmig", 1, dependsOn("db", state.ConditionHealthy), command("true")),
		svc("web", "app:1", "hweb", 2, dependsOn("db", state.ConditionHealthy),
			dependsOn("migrate", state.ConditionCompletedSuccessfully)),
	)
	for _, m := range mods {
		m(d)
	}
	return d
}

// stackUp is stack converged: db healthy, migrate done, two webs.
func stackUp(extra ...state.Container) *state.Observed {
	return observed(append([]state.Container{
		ctr("db", 1, "hdb", pgImage, health(state.HealthHealthy)),
		ctr("migrate", 1, "hmig", exited(0)),
		ctr("web", 1, "hweb"),
		ctr("web", 2, "hweb"),
	}, extra...)...)
}

func TestPlanGolden(t *testing.T) {
	secs := func(d time.Duration) *time.Duration { return &d }
	cases := []struct {
		name string
		want *state.Desired
		obs  *state.Observed
		o    Options
		plan string
		warn string
	}{
		{
			name: "empty machine",
			want: stack(),
			obs:  &state.Observed{Project: proj},
			plan: `
[] -> #1 network:demo_default CreateNetwork (missing)
[] -> #2 volume:demo_data CreateVolume (missing)
[] -> #3 image:pg:16 EnsureImage (missing)
[1 2 3] -> #4 service:db:1 CreateContainer (missing)
[4] -> #5 service:db:1 StartContainer (created)
[] -> #6 image:app:1 EnsureImage (missing)
[5] -> #7 service:db:1 WaitContainer (until healthy)
[1 4 6 7] -> #8 service:migrate:1 CreateContainer (missing)
[8] -> #9 service:migrate:1 StartContainer (created)
[9] -> #10 service:migrate:1 WaitContainer (until exited-successfully)
[1 4 6 7 8 10] -> #11 service:web:1 CreateContainer (missing)
[11] -> #12 service:web:1 StartContainer (created)
[1 4 6 7 8 10] -> #13 service:web:2 CreateContainer (missing)
[13] -> #14 service:web:2 StartContainer (created)
`,
		},
		{
			name: "converged: nothing to do, the finished job is not rerun",
			want: stack(),
			obs:  stackUp(),
			plan: ``,
		},
		{
			name: "config change recreates stop-first; dependents stay",
			want: stack(func(d *state.Desired) { d.Services["db"].ConfigHash = "hdb2" }),
			obs:  stackUp(),
			plan: `
[] -> #1 service:db:1 RenameContainer (set aside: config changed)
[1] -> #2 service:db:1 StopContainer (config changed)
[2] -> #3 service:db:1 CreateContainer (config changed)
[2 3?] -> #4 service:db:1 RemoveContainer (config changed)
[3] -> #5 service:db:1 StartContainer (created)
`,
		},
		{
			name: "image digest change recreates; the completed job is rerun only when recreated",
			want: stack(),
			obs: func() *state.Observed {
				o := stackUp()
				o.Images[0].Digest = "sha256:app2"
				return o
			}(),
			plan: `
[] -> #1 service:migrate:1 RenameContainer (set aside: image changed)
[1] -> #2 service:migrate:1 CreateContainer (image changed)
[1 2?] -> #3 service:migrate:1 RemoveContainer (image changed)
[2] -> #4 service:migrate:1 StartContainer (created)
[] -> #5 service:web:1 RenameContainer (set aside: image changed)
[5] -> #6 service:web:1 StopContainer (image changed)
[4] -> #7 service:migrate:1 WaitContainer (until exited-successfully)
[2 6 7] -> #8 service:web:1 CreateContainer (image changed)
[6 8?] -> #9 service:web:1 RemoveContainer (image changed)
[8] -> #10 service:web:1 StartContainer (created)
[] -> #11 service:web:2 RenameContainer (set aside: image changed)
[11] -> #12 service:web:2 StopContainer (image changed)
[2 7 12] -> #13 service:web:2 CreateContainer (image changed)
[12 13?] -> #14 service:web:2 RemoveContainer (image changed)
[13] -> #15 service:web:2 StartContainer (created)
`,
		},
		{
			name: "image missing from the store: ensured, containers compared next pass",
			want: stack(func(d *state.Desired) { d.Services["web"].Replicas = 3 }),
			obs: func() *state.Observed {
				o := stackUp()
				o.Images = o.Images[1:]
				return o
			}(),
			plan: `
[] -> #1 image:app:1 EnsureImage (missing)
[1] -> #2 service:web:3 CreateContainer (missing)
[2] -> #3 service:web:3 StartContainer (created)
`,
		},
		{
			name: "scale up takes the next free number",
			want: stack(func(d *state.Desired) { d.Services["web"].Replicas = 3 }),
			obs: observed(ctr("db", 1, "hdb", pgImage, health(state.HealthHealthy)), ctr("migrate", 1, "hmig", exited(0)),
				ctr("web", 1, "hweb"), ctr("web", 3, "hweb")),
			plan: `
[] -> #1 service:web:2 CreateContainer (missing)
[1] -> #2 service:web:2 StartContainer (created)
`,
		},
		{
			name: "scale down removes obsolete first, then the highest numbers",
			want: stack(func(d *state.Desired) { d.Services["web"].Replicas = 1 }),
			obs: observed(ctr("db", 1, "hdb", pgImage, health(state.HealthHealthy)), ctr("migrate", 1, "hmig", exited(0)),
				ctr("web", 1, "hweb"), ctr("web", 2, "old"), ctr("web", 3, "hweb")),
			plan: `
[] -> #1 service:web:2 StopContainer (scale down)
[1] -> #2 service:web:2 RemoveContainer (scale down)
[] -> #3 service:web:3 StopContainer (scale down)
[3] -> #4 service:web:3 RemoveContainer (scale down)
`,
		},
		{
			name: "stopped containers start after their dependencies are ready again",
			want: stack(),
			obs: observed(ctr("db", 1, "hdb", pgImage, exited(143)), ctr("migrate", 1, "hmig", exited(0)),
				ctr("web", 1, "hweb", exited(143)), ctr("web", 2, "hweb")),
			plan: `
[] -> #1 service:db:1 StartContainer (exited (143))
[1] -> #2 service:db:1 WaitContainer (until healthy)
[2] -> #3 service:web:1 StartContainer (exited (143))
`,
		},
		{
			name: "a failed job is rerun and waited for",
			want: stack(),
			obs: observed(ctr("db", 1, "hdb", pgImage, health(state.HealthHealthy)), ctr("migrate", 1, "hmig", exited(1)),
				ctr("web", 1, "hweb", func(c *state.Container) { c.Status = state.StatusCreated }), ctr("web", 2, "hweb")),
			plan: `
[] -> #1 service:migrate:1 StartContainer (exited (1))
[1] -> #2 service:migrate:1 WaitContainer (until exited-successfully)
[2] -> #3 service:web:1 StartContainer (created)
`,
		},
		{
			name: "force recreate, with a stop timeout",
			want: desired(svc("web", "app:1", "hweb", 1)),
			obs:  observed(ctr("web", 1, "hweb")),
			o:    Options{ForceRecreate: true, Timeout: secs(3 * time.Second)},
			plan: `
[] -> #1 service:web:1 RenameContainer (set aside: forced)
[1] -> #2 service:web:1 StopContainer (forced)
[2] -> #3 service:web:1 CreateContainer (forced)
[2 3?] -> #4 service:web:1 RemoveContainer (forced)
[3] -> #5 service:web:1 StartContainer (created)
`,
		},
		{
			name: "no-recreate keeps a changed container and starts it",
			want: desired(svc("web", "app:1", "hweb2", 1)),
			obs:  observed(ctr("web", 1, "hweb", exited(137))),
			o:    Options{NoRecreate: true},
			plan: `
[] -> #1 service:web:1 StartContainer (exited (137))
`,
		},
		{
			name: "no-start creates only",
			want: stack(),
			obs:  observed(),
			o:    Options{NoStart: true},
			plan: `
[] -> #1 service:db:1 CreateContainer (missing)
[1] -> #2 service:migrate:1 CreateContainer (missing)
[1 2] -> #3 service:web:1 CreateContainer (missing)
[1 2] -> #4 service:web:2 CreateContainer (missing)
`,
		},
		{
			name: "one service target brings its dependencies",
			want: stack(func(d *state.Desired) { d.Services["other"] = svc("other", "app:1", "hoth", 1) }),
			obs:  observed(),
			o:    Options{Services: []string{"migrate"}},
			plan: `
[] -> #1 service:db:1 CreateContainer (missing)
[1] -> #2 service:db:1 StartContainer (created)
[2] -> #3 service:db:1 WaitContainer (until healthy)
[1 3] -> #4 service:migrate:1 CreateContainer (missing)
[4] -> #5 service:migrate:1 StartContainer (created)
`,
		},
		{
			name: "no-deps plans only the target",
			want: stack(),
			obs:  observed(),
			o:    Options{Services: []string{"web"}, NoDeps: true},
			plan: `
[] -> #1 service:web:1 CreateContainer (missing)
[1] -> #2 service:web:1 StartContainer (created)
[] -> #3 service:web:2 CreateContainer (missing)
[3] -> #4 service:web:2 StartContainer (created)
`,
		},
		{
			name: "orphans are reported",
			want: desired(svc("web", "app:1", "hweb", 1)),
			obs:  observed(ctr("web", 1, "hweb"), ctr("old", 1, "hold")),
			plan: ``,
			warn: "orphan container demo-old-1 (service old is not in the project); remove it with --remove-orphans",
		},
		{
			name: "orphans are removed with remove-orphans",
			want: desired(svc("web", "app:1", "hweb", 1)),
			obs:  observed(ctr("web", 1, "hweb"), ctr("old", 1, "hold"), ctr("old", 2, "hold", exited(0))),
			o:    Options{RemoveOrphans: true},
			plan: `
[] -> #1 service:old:1 StopContainer (orphan)
[1] -> #2 service:old:1 RemoveContainer (orphan)
[] -> #3 service:old:2 RemoveContainer (orphan)
`,
		},
		{
			name: "namespace sharers and restart: true dependents are recreated with their dependency",
			want: desired(
				svc("web", "app:1", "hweb2", 1),
				svc("sidecar", "app:1", "hside", 1, func(s *state.Service) {
					s.Container.NetworkMode, s.Container.Networks = "service:web", nil
				}),
				svc("worker", "app:1", "hwork", 1, func(s *state.Service) {
					s.DependsOn = map[string]state.Dependency{"web": {Condition: state.ConditionStarted, Required: true, Restart: true}}
				}),
				svc("client", "app:1", "hcli", 1, dependsOn("web", state.ConditionStarted)),
			),
			obs: observed(ctr("web", 1, "hweb"), ctr("sidecar", 1, "hside", func(c *state.Container) { c.Networks = nil }),
				ctr("worker", 1, "hwork"), ctr("client", 1, "hcli")),
			plan: `
[] -> #1 service:sidecar:1 RenameContainer (set aside: dependency web recreated)
[1] -> #2 service:sidecar:1 StopContainer (dependency web recreated)
[] -> #3 service:worker:1 RenameContainer (set aside: dependency web recreated)
[3] -> #4 service:worker:1 StopContainer (dependency web recreated)
[2 4] -> #5 service:web:1 RenameContainer (set aside: config changed)
[5] -> #6 service:web:1 StopContainer (config changed)
[6] -> #7 service:web:1 CreateContainer (config changed)
[6 7?] -> #8 service:web:1 RemoveContainer (config changed)
[7] -> #9 service:web:1 StartContainer (created)
[2 7 9] -> #10 service:sidecar:1 CreateContainer (dependency web recreated)
[2 10?] -> #11 service:sidecar:1 RemoveContainer (dependency web recreated)
[10] -> #12 service:sidecar:1 StartContainer (created)
[4 7 9] -> #13 service:worker:1 CreateContainer (dependency web recreated)
[4 13?] -> #14 service:worker:1 RemoveContainer (dependency web recreated)
[13] -> #15 service:worker:1 StartContainer (created)
`,
		},
		{
			name: "a changed network is recreated with its containers",
			want: desired(svc("web", "app:1", "hweb", 1), svc("api", "app:1", "hapi", 1)),
			obs: func() *state.Observed {
				o := observed(ctr("web", 1, "hweb"), ctr("api", 1, "hapi"))
				o.Networks[0].Hash = "net0"
				return o
			}(),
			plan: `
[] -> #1 service:api:1 StopContainer (network demo_default recreated)
[1] -> #2 service:api:1 RemoveContainer (network demo_default recreated)
[] -> #3 service:web:1 StopContainer (network demo_default recreated)
[3] -> #4 service:web:1 RemoveContainer (network demo_default recreated)
[2 4] -> #5 network:demo_default RemoveNetwork (config changed)
[5] -> #6 network:demo_default CreateNetwork (config changed)
[2 6] -> #7 service:api:1 CreateContainer (network demo_default recreated)
[7] -> #8 service:api:1 StartContainer (created)
[4 6] -> #9 service:web:1 CreateContainer (network demo_default recreated)
[9] -> #10 service:web:1 StartContainer (created)
`,
		},
		{
			name: "start-first: the new replica is healthy before the old one stops",
			want: desired(svc("web", "app:1", "hweb2", 2, startFirst, healthcheck)),
			obs:  observed(ctr("web", 1, "hweb", health(state.HealthHealthy)), ctr("web", 2, "hweb2", health(state.HealthHealthy))),
			plan: `
[] -> #1 service:web:1+next CreateContainer (config changed)
[1] -> #2 service:web:1+next StartContainer (created)
[2] -> #3 service:web:1+next WaitContainer (until healthy)
[3] -> #4 service:web:1 StopContainer (replaced)
[4] -> #5 service:web:1 RemoveContainer (replaced)
[5] -> #6 service:web:1+next RenameContainer (replaces demo-web-1)
`,
		},
		{
			name: "an interrupted start-first is finished",
			want: desired(svc("web", "app:1", "hweb2", 1, startFirst)),
			obs: observed(ctr("web", 1, "hweb2", func(c *state.Container) {
				c.ID, c.Name = "id-new", "id-web-1_demo-web-1"
			})),
			plan: `
[] -> #1 service:web:1 RenameContainer (finish replacement of demo-web-1)
`,
		},
		{
			name: "an optional dependency is waited for softly; a missing one is ignored",
			want: desired(
				svc("cache", "app:1", "hc", 1, healthcheck),
				svc("web", "app:1", "hweb", 1, optionalDep("cache", state.ConditionHealthy), optionalDep("absent", state.ConditionStarted)),
			),
			obs: observed(ctr("cache", 1, "hc", health(state.HealthStarting))),
			plan: `
[] -> #1 service:cache:1 WaitContainer (until healthy)
[1?] -> #2 service:web:1 CreateContainer (missing)
[2] -> #3 service:web:1 StartContainer (created)
`,
		},
		{
			name: "a changed volume is kept and reported",
			want: stack(func(d *state.Desired) {
				d.Volumes["data"] = state.VolumeSpec{Name: proj + "_data", Key: "data", Project: proj, Hash: "vol2"}
			}),
			obs:  stackUp(),
			plan: ``,
			warn: "volume demo_data changed but is kept (its data would be lost); remove it with down -v to recreate it",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanUp(tc.want, tc.obs, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			got := p.String()
			if strings.TrimPrefix(tc.plan, "\n") != got {
				t.Errorf("plan:\n%s\nwant:\n%s", got, strings.TrimPrefix(tc.plan, "\n"))
			}
			if w := strings.Join(p.Warnings, "\n"); w != tc.warn {
				t.Errorf("warnings:\n%s\nwant:\n%s", w, tc.warn)
			}
			if p.Empty() != (tc.plan == "") {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
	_ = secs
}
