package cli

import (
	"reflect"
	"syscall"
	"testing"
)

func TestFastPathFindsRuntimeAfterGlobalFlags(t *testing.T) {
	t.Setenv("BERTH_RUN_ROOT", "")
	cases := []struct {
		args []string
		root string
		rest []string
		ok   bool
	}{
		{[]string{"runtime", "create", "--bundle", "b", "x"}, "/run/berth", []string{"create", "--bundle", "b", "x"}, true},
		{[]string{"--run-root", "/r", "runtime", "state", "x"}, "/r", []string{"state", "x"}, true},
		{[]string{"--run-root=/r2", "-p", "proj", "--progress=plain", "runtime", "list"}, "/r2", []string{"list"}, true},
		{[]string{"-f", "runtime", "up"}, "", nil, false}, // "runtime" is -f's value
		{[]string{"up", "runtime"}, "", nil, false},
		{[]string{"runtime", "--help"}, "", nil, false},
	}
	for _, c := range cases {
		root, rest, ok := fastPath(c.args)
		if ok != c.ok || (ok && (root != c.root || !reflect.DeepEqual(rest, c.rest))) {
			t.Errorf("%q: got %q %q %v", c.args, root, rest, ok)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"KILL": syscall.SIGKILL, "SIGTERM": syscall.SIGTERM, "hup": syscall.SIGHUP, "9": syscall.SIGKILL} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := ParseSignal("NOPE"); err == nil {
		t.Error("NOPE parsed")
	}
}
