package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// netSnapshot is the host namespace as text: links, addresses, routes and
// the nftables ruleset, one sorted list each. Link lines drop counters
// and flags that change by themselves.
type netSnapshot map[string][]string

func (m *machine) netSnapshot() netSnapshot {
	m.t.Helper()
	s := netSnapshot{}
	for kind, args := range map[string][]string{
		"link":  {"ip", "-o", "link", "show"},
		"addr":  {"ip", "-o", "addr", "show"},
		"route": {"ip", "route", "show", "table", "all"},
		"nft":   {"nft", "list", "ruleset"},
	} {
		out, err := m.Host(args...)
		if err != nil {
			m.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); l == "" {
				continue
			}
			if kind == "link" || kind == "addr" {
				// "1: lo: <...> ..." → keep the name and addresses only.
				f := strings.Fields(l)
				keep := []string{f[1]}
				for i, w := range f {
					if (w == "inet" || w == "inet6" || w == "link/ether") && i+1 < len(f) {
						keep = append(keep, w, f[i+1])
					}
				}
				l = strings.Join(keep, " ")
			}
			lines = append(lines, l)
		}
		slices.Sort(lines)
		s[kind] = lines
	}
	return s
}

// assertNoResidue fails the test when anything of the project is left:
// the host namespace differs from before, a process of the machine's
// roots runs, a mount or cgroup of one of the ids exists, or a state file
// names them.
func (m *machine) assertNoResidue(before netSnapshot, ids []string) {
	m.t.Helper()
	var problems []string
	after := m.netSnapshot()
	for kind, lines := range after {
		if extra := minus(lines, before[kind]); len(extra) > 0 {
			problems = append(problems, fmt.Sprintf("%s left: %q", kind, extra))
		}
		if gone := minus(before[kind], lines); len(gone) > 0 {
			problems = append(problems, fmt.Sprintf("%s removed: %q", kind, gone))
		}
	}
	// The monitor and the DNS responder leave once idle (2 s).
	deadline := time.Now().Add(6 * time.Second)
	for len(m.Pids()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range m.Pids() {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		problems = append(problems, fmt.Sprintf("process %d left: %q", pid, cmd))
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		for _, id := range ids {
			if strings.Contains(l, id) {
				problems = append(problems, "mount left: "+l)
			}
		}
		if strings.Contains(l, m.root+"/") || strings.Contains(l, m.run+"/") {
			problems = append(problems, "mount left: "+l)
		}
	}
	for _, id := range ids {
		cg, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id)
		cg2, _ := filepath.Glob("/sys/fs/cgroup/berth/" + id)
		for _, d := range append(cg, cg2...) {
			problems = append(problems, "cgroup left: "+d)
		}
	}
	problems = append(problems, m.stateResidue(ids)...)
	if len(problems) > 0 {
		m.t.Fatalf("residue after down -v:\n  %s", strings.Join(problems, "\n  "))
	}
}

// stateResidue lists state files that still name a container or hold a
// project object: container records, runtime states, network sandboxes,
// snapshots, volumes, endpoint records.
func (m *machine) stateResidue(ids []string) []string {
	var out []string
	for _, dir := range []string{
		filepath.Join(m.root, "containers"),
		filepath.Join(m.root, "volumes"),
		filepath.Join(m.run, "netns"),
		filepath.Join(m.run, "network", "containers"),
	} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			// Dot files are locks; dot directories are half-made or
			// half-removed containers and count.
			if e.IsDir() || !strings.HasPrefix(e.Name(), ".") {
				out = append(out, "state left: "+filepath.Join(dir, e.Name()))
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(m.run, "runtime"))
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, "runtime state left: "+e.Name())
		}
	}
	for _, id := range ids {
		for _, p := range []string{
			filepath.Join(m.root, "store", "snapshots", id),
			filepath.Join(m.root, "containers", id),
		} {
			if _, err := os.Lstat(p); err == nil {
				out = append(out, "state left: "+p)
			}
		}
	}
	// down of a whole project removes its lock file too.
	if left, _ := filepath.Glob(filepath.Join(m.root, "projects", "*.lock")); len(left) > 0 {
		out = append(out, fmt.Sprintf("project lock files left: %v", left))
	}
	// The cached desired state: down -v removes the project's
	// (TestDownRemovesCache), but the tests run `ps` after it, which
	// caches the project's file again.
	if b, err := os.ReadFile(filepath.Join(m.root, "network", "state.json")); err == nil {
		for _, id := range ids {
			if strings.Contains(string(b), id) {
				out = append(out, "network state names container "+id[:12])
			}
		}
	}
	// Endpoint records (one file per container) and their lock files.
	for _, dir := range []string{filepath.Join(m.root, "network", "endpoints"), filepath.Join(m.run, "network", "locks")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			out = append(out, "network state left: "+filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// minus is a - b as multisets of lines.
func minus(a, b []string) []string {
	count := map[string]int{}
	for _, l := range b {
		count[l]++
	}
	var out []string
	for _, l := range a {
		if count[l] > 0 {
			count[l]--
			continue
		}
		out = append(out, l)
	}
	return out
}

// allIDs is every container id the project has now.
func (p *project) allIDs() []string {
	var ids []string
	for _, e := range p.ps() {
		ids = append(ids, e.ID)
	}
	return ids
}
