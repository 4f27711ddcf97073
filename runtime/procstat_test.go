package runtime

import (
	"os/exec"
	"testing"
	"time"
)

// pidAlive reads /proc once: a live process with its start time is alive;
// another start time (a reused pid) or a zombie is not.
func TestPidAlive(t *testing.T) {
	live := exec.Command("sleep", "10")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	start, err := pidStartTime(live.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !pidAlive(live.Process.Pid, start) || !pidAlive(live.Process.Pid, 0) {
		t.Fatal("a running process reads as dead")
	}
	if pidAlive(live.Process.Pid, start+1) {
		t.Fatal("a process with another start time reads as alive (pid reuse)")
	}
	dead := exec.Command("true")
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	defer dead.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, state, err := procStat(dead.Process.Pid)
		if err == nil && state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("true never became a zombie (state %c, %v)", state, err)
		}
	}
	if pidAlive(dead.Process.Pid, 0) {
		t.Fatal("a zombie reads as alive")
	}
}
