package native

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/state"
)

// TestWaitSurvivesMonitorDeath kills the runtime monitor while a container
// is on its way to healthy: the wait must not poll a state nobody updates
// any more, but get a new monitor going (which adopts the container and
// resumes its healthcheck) and return once it is healthy.
func TestWaitSurvivesMonitorDeath(t *testing.T) {
	ref := "waittest/busybox:latest"
	d := newTestDriver(t, ref)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := d.EnsureImage(ctx, state.ImageSpec{Ref: ref, PullPolicy: "never"})
	if err != nil {
		t.Fatal(err)
	}
	spec := state.ContainerSpec{
		Name: "waittest-app-1", Project: "waittest", Service: "app", Number: 1,
		Image: ref, ImageDigest: img.Digest, NetworkMode: "none",
		Command: []string{"sh", "-c", "sleep 2; touch /tmp/ok; exec sleep 3600"},
		Healthcheck: &state.Healthcheck{
			Test: []string{"CMD-SHELL", "[ -f /tmp/ok ]"}, Interval: 200 * time.Millisecond, Retries: 3,
			StartPeriod: 20 * time.Second, StartInterval: 200 * time.Millisecond,
		},
	}
	id, err := d.CreateContainer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.RemoveContainer(context.Background(), id) })
	if err := d.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	pid := monitorPid(t, filepath.Join(d.opt.RunRoot, "runtime"))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitContainer(ctx, id, driver.WaitHealthy); err != nil {
		st, _ := d.rt.State(id)
		log, _ := os.ReadFile(filepath.Join(d.opt.RunRoot, "runtime", "monitor.log"))
		t.Fatalf("wait healthy after the monitor died: %v\nstate %+v\nhealth %+v\nmonitor log:\n%s", err, st, st.Health, log)
	}
	if next := monitorPid(t, filepath.Join(d.opt.RunRoot, "runtime")); next == pid {
		t.Fatalf("monitor %d still the same", pid)
	}
}

// monitorPid finds the monitor process of a runtime root.
func monitorPid(t *testing.T, root string) int {
	t.Helper()
	want := []byte("berth-monitor\x00" + root + "\x00")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Equal(b, want) {
			return pid
		}
	}
	t.Fatalf("no monitor for %s", root)
	return 0
}
