package runtime

import (
	"bufio"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"

	"github.com/berth-dev/berth/kernel"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// spawnIn starts a child already inside cg, sparing its migration after
// the start. A migration by pid (a cgroup.procs write) takes the kernel's
// global cgroup threadgroup lock, whose writer first waits for an RCU
// grace period, and every fork and thread exit on the machine waits
// behind it, the next container's start (its client's fork, its init's
// exec) among them when a spare was being staged beside it.
// BenchmarkChildPlacement: 7.7–8.0 ms to start, migrate into five v1
// hierarchies and reap a child on this machine, 2.5–2.8 ms started inside.
//
//   - v2: clone3 with CLONE_INTO_CGROUP.
//   - v1 (Linux 6.0 and later): a thread of ours moves itself, writing 0
//     to each hierarchy's tasks file (a thread moving itself alone skips
//     the global lock), forks the child, which inherits the thread's
//     cgroups, and moves back.
//
// in tells whether the child is in every hierarchy of cg; when it is not
// (an older kernel, a refusal), the caller moves it as before.
func (cg *cgroup) spawnIn(plan nsPlan, start func(nsPlan) (*child, error)) (c *child, in bool, err error) {
	switch {
	case cg == nil:
	case cg.v2:
		return cg.spawnV2(plan, start)
	case kernel.AtLeast(6, 0):
		return cg.spawnV1(plan, start)
	}
	c, err = start(plan)
	return c, false, err
}

func (cg *cgroup) spawnV2(plan nsPlan, start func(nsPlan) (*child, error)) (*child, bool, error) {
	dir, err := os.OpenFile(cg.dirs[""], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		defer dir.Close()
		into := plan
		into.intoCgroup = dir
		if c, err := start(into); err == nil {
			return c, true, nil
		}
		// A kernel without clone3 or CLONE_INTO_CGROUP (before 5.7), or a
		// cgroup that refuses processes: started as before, then moved.
	}
	c, err := start(plan)
	return c, false, err
}

func (cg *cgroup) spawnV1(plan nsPlan, start func(nsPlan) (*child, error)) (*child, bool, error) {
	type result struct {
		c   *child
		in  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		home, err := threadCgroups(cg.dirs)
		if err != nil {
			goruntime.UnlockOSThread()
			c, err := start(plan)
			done <- result{c, false, err}
			return
		}
		in := moveThread(cg.dirs) == nil
		c, err := start(plan)
		// Back home before answering: the caller may remove or rename
		// the cgroup next, which a thread still inside would keep busy.
		if moveThread(home) == nil {
			goruntime.UnlockOSThread()
		} // else the goroutine ends locked: Go ends its thread with it
		done <- result{c, in, err}
	}()
	r := <-done
	return r.c, r.in, r.err
}

// moveThread moves the calling thread (alone) into dirs, v1 cgroups.
func moveThread(dirs map[string]string) error {
	for _, d := range dirs {
		if err := writeCg(d, "tasks", "0"); err != nil {
			return err
		}
	}
	return nil
}

// threadCgroups returns, for each hierarchy of dirs, the directory of the
// cgroup the calling thread is in.
func threadCgroups(dirs map[string]string) (map[string]string, error) {
	hs, err := v1Hierarchies()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/thread-self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// hierarchy-id:controllers:path, controllers as in the mount options
	byControllers := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && parts[1] != "" {
			byControllers[controllerSet(parts[1])] = parts[2]
		}
	}
	home := make(map[string]string, len(dirs))
	for name := range dirs {
		h, ok := hs[name]
		if !ok {
			return nil, os.ErrNotExist
		}
		path, ok := byControllers[controllerSet(h.options)]
		if !ok {
			return nil, os.ErrNotExist
		}
		rel, ok := strings.CutPrefix(path, h.root)
		if !ok {
			return nil, os.ErrNotExist // outside what the mount shows
		}
		home[name] = filepath.Join(h.mountpoint, rel)
	}
	return home, sc.Err()
}

// controllerSet is a comma list of controllers in one order.
func controllerSet(list string) string {
	l := strings.Split(list, ",")
	slices.Sort(l)
	return strings.Join(l, ",")
}

// placeable is cg when a child may start inside it, nil when the spec
// limits the container's processes: a child moved in after its start may
// exceed the limit, one started inside may not even start its Go runtime's
// threads (an exec into a container at its limit would fail).
func placeable(cg *cgroup, spec *specs.Spec) *cgroup {
	if l := spec.Linux; l != nil && l.Resources != nil && l.Resources.Pids != nil {
		if p := l.Resources.Pids.Limit; p != nil && *p > 0 {
			return nil
		}
	}
	return cg
}
