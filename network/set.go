package network

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Set converges all of berth's networking to cfg: networks and containers
// not in cfg are removed, the others converged, and whatever a crash left
// behind (links, namespaces, files berth no longer records) is cleaned.
func (m *Manager) Set(ctx context.Context, cfg Config) error {
	wantEP := map[string]bool{}
	for _, e := range cfg.Endpoints {
		wantEP[e.ID] = true
	}
	wantNet := map[string]bool{}
	for _, n := range cfg.Networks {
		wantNet[n.Name] = true
	}
	st, err := m.read()
	if err != nil {
		return err
	}
	for id := range st.Endpoints {
		if !wantEP[id] {
			if err := m.RemoveSandbox(ctx, id); err != nil {
				return err
			}
		}
	}
	// Containers that stay but leave a network that goes let go of it first.
	for id, r := range st.Endpoints {
		if !wantEP[id] {
			continue
		}
		for _, i := range r.Interfaces {
			if !wantNet[i.Network] {
				if err := m.Detach(ctx, id); err != nil {
					return err
				}
				break
			}
		}
	}
	for name := range st.Networks {
		if !wantNet[name] {
			if err := m.RemoveNetwork(ctx, name); err != nil {
				return err
			}
		}
	}
	for _, n := range cfg.Networks {
		if n.External {
			continue
		}
		_, err := m.EnsureNetwork(ctx, n)
		if errors.Is(err, ErrInUse) {
			// The network must be rebuilt: its containers re-attach below.
			for _, id := range usersOfName(m, n.Name) {
				if err := m.Detach(ctx, id); err != nil {
					return err
				}
			}
			_, err = m.EnsureNetwork(ctx, n)
		}
		if err != nil {
			return err
		}
	}
	eps := append([]Endpoint(nil), cfg.Endpoints...)
	// Containers that join another's namespace come after it.
	sort.SliceStable(eps, func(i, j int) bool {
		return !strings.HasPrefix(eps[i].NetworkMode, "container:") && strings.HasPrefix(eps[j].NetworkMode, "container:")
	})
	for _, e := range eps {
		if _, err := m.Attach(ctx, e); err != nil {
			return err
		}
	}
	return m.collect(ctx)
}

func usersOfName(m *Manager, network string) []string {
	st, err := m.read()
	if err != nil {
		return nil
	}
	return usersOf(st, network)
}

// collect removes what berth made but no longer records: bridges and host
// veths with berth's prefixes, pinned namespaces and container files.
func (m *Manager) collect(ctx context.Context) error {
	return m.mutate(ctx, func(st *diskState) error {
		keep := map[string]bool{}
		for _, n := range st.Networks {
			keep[n.Bridge] = true
		}
		for _, r := range st.Endpoints {
			for _, i := range r.Interfaces {
				keep[i.HostVeth] = true
			}
			for _, i := range r.Stale {
				keep[i.HostVeth] = true
			}
		}
		links, err := dumpRetry(m.nl.LinkList)
		if err != nil {
			return err
		}
		for _, l := range links {
			name := l.Attrs().Name
			ours := ((strings.HasPrefix(name, bridgePrefix) && l.Type() == "bridge") ||
				(strings.HasPrefix(name, hostVethPrefix) && l.Type() == "veth")) &&
				l.Attrs().Alias == linkAlias(m.opt.Root)
			if ours && !keep[name] {
				if err := m.nl.LinkDel(l); err != nil {
					var nf netlink.LinkNotFoundError
					if !errors.As(err, &nf) {
						return err
					}
				}
			}
		}
		if err := m.collectDir(filepath.Join(m.opt.RunRoot, "netns"), st, removeNetns); err != nil {
			return err
		}
		if err := m.collectDir(filepath.Join(m.runDir, "containers"), st, os.RemoveAll); err != nil {
			return err
		}
		// Temporary files of writers killed before their rename (a
		// write under way is younger than a minute).
		removeTemps(filepath.Join(m.stateDir, endpointsDir), ".tmp-", time.Minute)
		removeTemps(m.stateDir, ".tmp-", time.Minute)
		// Lock files of containers without a record, that nobody holds.
		if err := m.collectDir(filepath.Join(m.runDir, "locks"), st, removeIdleLock); err != nil {
			return err
		}
		return m.applyFirewall(st)
	})
}

// removeIdleLock removes a lock file unless someone holds it (see
// lockRemovable: a waiter on the removed file takes a new one).
func removeIdleLock(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return nil
	}
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
		return os.Remove(path)
	}
	return nil
}

func (m *Manager) collectDir(dir string, st *diskState, remove func(string) error) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if _, ok := st.Endpoints[e.Name()]; ok {
			continue
		}
		if err := remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Prune removes the networks no container uses (except those listed in
// keep) and cleans what a crash left behind. It returns the removed names.
func (m *Manager) Prune(ctx context.Context, keep map[string]bool) ([]string, error) {
	st, err := m.read()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range sortedNetworks(st) {
		if keep[n.Spec.Name] || len(usersOf(st, n.Spec.Name)) > 0 {
			continue
		}
		if err := m.RemoveNetwork(ctx, n.Spec.Name); err != nil {
			return removed, err
		}
		removed = append(removed, n.Spec.Name)
	}
	return removed, nil
}
