package runtime

import (
	"io"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkChildPlacement: a child put in the five v1 hierarchies of a
// spare's staging cgroup, by a migration after its start (a cgroup.procs
// write per hierarchy, as before) or started inside (cgroup.spawnIn). Each
// op starts cat, places it, ends it and reaps it. Ops are 30 ms apart (not
// timed), as spares are started in a loop of `berth runtime run`: the
// kernel lock a migration takes waits for an RCU grace period only when
// it was not taken just before, which back-to-back ops would hide.
//
//	go test -run '^$' -bench ChildPlacement -benchtime 100x ./runtime   (root, cgroup v1)
func BenchmarkChildPlacement(b *testing.B) {
	needRoot(b)
	if isCgroupV2() {
		b.Skip("cgroup v1 only: on v2 a child is cloned into its cgroup")
	}
	cg := newStaging()
	if cg == nil {
		b.Fatal("no staging cgroup")
	}
	defer cg.destroy()
	var cmd *exec.Cmd
	var stdin io.WriteCloser
	start := func(nsPlan) (*child, error) {
		cmd = exec.Command("/bin/cat")
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return &child{proc: cmd.Process, pid: cmd.Process.Pid}, nil
	}
	end := func(b *testing.B) {
		stdin.Close() // cat ends at EOF
		cmd.Wait()
		b.StopTimer()
		time.Sleep(30 * time.Millisecond)
		b.StartTimer()
	}
	b.Run("migrate", func(b *testing.B) {
		for b.Loop() {
			c, err := start(nsPlan{})
			if err == nil {
				err = cg.addPid(c.pid)
			}
			if err != nil {
				b.Fatal(err)
			}
			end(b)
		}
	})
	b.Run("spawnIn", func(b *testing.B) {
		for b.Loop() {
			_, in, err := cg.spawnIn(nsPlan{}, start)
			if err != nil || !in {
				b.Fatalf("placed %v: %v", in, err)
			}
			end(b)
		}
	})
}
