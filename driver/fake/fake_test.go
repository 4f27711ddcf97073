package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/drivertest"
	"github.com/berth-dev/berth/driver/fake"
	"github.com/berth-dev/berth/state"
)

func TestContract(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver { return fake.New() })
}

func TestFailOnceFailsOnce(t *testing.T) {
	ctx := context.Background()
	d := fake.New()
	d.FailOnce("CreateNetwork", "p_n", nil)
	s := state.NetworkSpec{Name: "p_n", Project: "p"}
	if err := d.CreateNetwork(ctx, s); !errors.Is(err, fake.ErrInjected) {
		t.Fatalf("first call = %v, want the injected failure", err)
	}
	if err := d.CreateNetwork(ctx, s); err != nil {
		t.Fatalf("second call = %v, want success", err)
	}
	calls := d.Calls()
	if len(calls) != 2 || calls[1].String() != "CreateNetwork p_n" {
		t.Errorf("calls = %v", calls)
	}
}

func TestHealthAndNetworkInUse(t *testing.T) {
	ctx := context.Background()
	d := fake.New()
	d.AutoHealthy = false
	im, _ := d.EnsureImage(ctx, state.ImageSpec{Ref: "x:1"})
	if err := d.CreateNetwork(ctx, state.NetworkSpec{Name: "p_default", Project: "p"}); err != nil {
		t.Fatal(err)
	}
	spec := state.ContainerSpec{Name: "p-db-1", Project: "p", Service: "db", Number: 1, ImageDigest: im.Digest,
		Networks:    []state.NetworkAttachment{{Network: "p_default"}},
		Healthcheck: &state.Healthcheck{Test: []string{"CMD", "pg_isready"}}}
	id, err := d.CreateContainer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveNetwork(ctx, "p_default"); err == nil {
		t.Errorf("removing a network in use succeeded")
	}
	done := make(chan error, 1)
	go func() { done <- d.WaitContainer(ctx, id, driver.WaitHealthy) }()
	select {
	case err := <-done:
		t.Fatalf("wait healthy returned %v while starting", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := d.SetHealth("p-db-1", state.HealthHealthy); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("wait healthy: %v", err)
	}
}
