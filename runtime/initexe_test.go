package runtime

import (
	"os"
	"testing"
)

// An embedded init refuses to serve a berth of another build (their
// protocol is internal); a child started without a stamp (berth running
// its children from itself) is not checked.
func TestCheckStampRefusesAnotherBuild(t *testing.T) {
	saved := buildStamp
	defer func() { buildStamp = saved }()
	buildStamp = "build-a"
	t.Setenv(envStamp, "build-b")
	if err := checkStamp(); err == nil {
		t.Fatal("an init of build-a served berth of build-b")
	}
	if _, set := os.LookupEnv(envStamp); set {
		t.Fatal("the stamp stays in the environment the container's process may see")
	}
	t.Setenv(envStamp, "build-a")
	if err := checkStamp(); err != nil {
		t.Fatalf("same build: %v", err)
	}
	os.Unsetenv(envStamp)
	if err := checkStamp(); err != nil {
		t.Fatalf("no stamp: %v", err)
	}
}
