package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

// TestUpOnFakeMachine runs berth up's code path (load, lock, plan, execute)
// against the in-memory driver.
func TestUpOnFakeMachine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	err := os.WriteFile(file, []byte(`
name: drydemo
services:
  db:
    image: postgres:16
    healthcheck:
      test: ["CMD", "pg_isready"]
  web:
    image: nginx:1.27
    depends_on:
      db:
        condition: service_healthy
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	savedGlobal, savedDriver := global, machineDriver
	t.Cleanup(func() { global, machineDriver = savedGlobal, savedDriver })
	global = globalOptions{files: []string{file}, root: t.TempDir(), runRoot: t.TempDir(), parallel: -1}
	machine := fake.New()
	machineDriver = func(context.Context) (driver.Driver, error) { return machine, nil }
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := runUp(ctx, &out, &errOut, upOptions{dryRun: true}, nil); err != nil {
		t.Fatalf("up --dry-run: %v\n%s", err, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"[] -> #1 network:drydemo_default CreateNetwork (missing)",
		"service:db:1 WaitContainer (until healthy)",
		"service:web:1 StartContainer (created)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plan lacks %q:\n%s", want, got)
		}
	}
	if calls := machine.Calls(); len(calls) != 1 || calls[0].Method != "Observe" {
		t.Fatalf("--dry-run changed the machine: %v", calls)
	}
	out.Reset()
	if err := runUp(ctx, &out, &errOut, upOptions{dryRun: true}, []string{"db"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "service:web") {
		t.Errorf("up db planned web too:\n%s", out.String())
	}
	out.Reset()
	global.progress = "plain"
	if err := runUp(ctx, &out, &errOut, upOptions{detach: true}, nil); err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	if c, ok := machine.Container("drydemo-web-1"); !ok || c.Status != state.StatusRunning {
		t.Errorf("web not running after up: %+v", c)
	}
	for _, want := range []string{" Network drydemo_default  Created\n", " Container drydemo-web-1  Starting\n", " Container drydemo-web-1  Started\n", " Container drydemo-db-1  Healthy\n"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("no progress line %q:\n%s", want, errOut.String())
		}
	}
	out.Reset()
	errOut.Reset()
	if err := runUp(ctx, &out, &errOut, upOptions{dryRun: true}, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "" || !strings.Contains(errOut.String(), "nothing to do") {
		t.Errorf("second up plans %q (%s)", out.String(), errOut.String())
	}
	machineDriver = nil
	if err := runUp(ctx, &out, &errOut, upOptions{}, nil); err == nil || !strings.Contains(err.Error(), "no machine driver") {
		t.Errorf("up without a driver: %v", err)
	}
}

// TestUpOverrides checks that --scale, --build, --no-build and --pull
// reach the desired state the planner sees.
func TestUpOverrides(t *testing.T) {
	desired := func() *state.Desired {
		return &state.Desired{Services: map[string]*state.Service{
			"built":  {Name: "built", Replicas: 1, Image: state.ImageSpec{Ref: "p-built", Build: &state.BuildSpec{Context: "/x"}}},
			"pulled": {Name: "pulled", Replicas: 1, Image: state.ImageSpec{Ref: "nginx", PullPolicy: "missing"}},
		}}
	}
	d := desired()
	if err := (upOptions{scale: []string{"pulled=3", "built=0"}, build: true, pull: "always"}).applyOverrides(d); err != nil {
		t.Fatal(err)
	}
	if d.Services["pulled"].Replicas != 3 || d.Services["built"].Replicas != 0 {
		t.Errorf("--scale: %d %d", d.Services["pulled"].Replicas, d.Services["built"].Replicas)
	}
	if d.Services["built"].Image.PullPolicy != "build" || d.Services["pulled"].Image.PullPolicy != "always" {
		t.Errorf("--build --pull always: %+v %+v", d.Services["built"].Image, d.Services["pulled"].Image)
	}
	d = desired()
	if err := (upOptions{noBuild: true, pull: "never"}).applyOverrides(d); err != nil {
		t.Fatal(err)
	}
	if d.Services["built"].Image.PullPolicy != "never" || d.Services["pulled"].Image.PullPolicy != "never" {
		t.Errorf("--no-build --pull never: %+v %+v", d.Services["built"].Image, d.Services["pulled"].Image)
	}
	d = desired()
	if err := (upOptions{pull: "always"}).applyOverrides(d); err != nil || !d.Services["built"].Image.Build.Pull {
		t.Errorf("--pull always does not refresh a build's base images: %v", err)
	}
	for _, bad := range []upOptions{{scale: []string{"nosuch=1"}}, {scale: []string{"pulled"}}, {scale: []string{"pulled=-1"}}, {pull: "sometimes"}} {
		if err := bad.applyOverrides(desired()); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := (upOptions{build: true, noBuild: true}).planOptions(nil); err == nil {
		t.Errorf("--build --no-build accepted")
	}
}
