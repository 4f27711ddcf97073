package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleNetworks runs examples/networks with the one command its
// README gives and checks what the probe found: a name across a network,
// an alias, and isolation between networks.
func TestExampleNetworks(t *testing.T) {
	m := newMachine(t)
	dir := filepath.Join(repoRoot, "examples", "networks")
	p := m.at(dir)
	before := m.netSnapshot()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+m.netns, "--", "./run.sh")
	cmd.Dir = dir
	cmd.Env = append(m.Env(), "BERTH="+m.bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"probe -> api (front):          db says hello",
		"probe -> db name:              not resolvable from front (isolated)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run.sh output lacks %q:\n%s", want, out)
		}
	}
	ids := p.allIDs()
	p.must("down", "-v", "-t", "1")
	m.assertNoResidue(before, ids)
}
