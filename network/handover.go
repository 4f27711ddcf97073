package network

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A stop-first recreate replaces a container by one that attaches to the
// same networks, most often with the same addresses. Removing the old
// sandbox (its namespace's teardown, waited for so that no link is left)
// and building the new one (a namespace, a veth pair, addresses, routes)
// were ~20 ms of the recreate, under the kernel locks every other
// container operation takes. Instead the stopped container's sandbox is
// parked and the new container adopts it:
//
//   - Park (the stop of a container set aside) keeps the namespace, the
//     links and the addresses; the record loses its names (DNS skips it)
//     and its published ports.
//   - Adopt (the successor's create) moves the parked sandbox to the new
//     container: its namespace is pinned at the new path, its record
//     re-keyed; it stays parked until the new container's Attach, which
//     finds its links in place (allocate keeps their names, pickAddr the
//     addresses) and only names and publishes them.
//
// Anything that goes wrong leaves a case the plain paths handle: a parked
// sandbox nobody adopts is removed with its container (RemoveSandbox); an
// Attach without an adopted sandbox builds one.

// Park keeps container id's sandbox for a successor (see above). A
// container without one is left as it is.
func (m *Manager) Park(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	unlock, err := m.lockEndpoint(id)
	if err != nil {
		return err
	}
	defer unlock(false)
	r, err := m.record(ctx, id)
	if err != nil || r == nil || r.Parked {
		return err
	}
	parked := *r
	parked.Parked, parked.Ports = true, nil
	if len(r.Ports) == 0 {
		// Nothing shared changes (addresses stay taken, the firewall
		// has none of it): the record alone, as Attach writes it.
		return writeEndpoint(m.stateDir, &parked)
	}
	err = m.mutate(ctx, func(st *diskState) error {
		st.Endpoints[id] = &parked
		return m.applyFirewall(st)
	})
	if err != nil {
		return err
	}
	m.forgetFlows(r, false)
	return nil
}

// Adopt moves the sandbox container from parked to container to, which
// has none yet. It reports whether there was one to take.
func (m *Manager) Adopt(ctx context.Context, from, to string) (bool, error) {
	if err := validID(from); err != nil {
		return false, err
	}
	if err := validID(to); err != nil {
		return false, err
	}
	unlockTo, err := m.lockEndpoint(to)
	if err != nil {
		return false, err
	}
	defer unlockTo(false)
	unlockFrom, err := m.lockEndpoint(from)
	if err != nil {
		return false, err
	}
	defer unlockFrom(false)
	if cur, err := m.record(ctx, to); err != nil || cur != nil {
		return false, err
	}
	old, err := m.record(ctx, from)
	if err != nil || old == nil || !old.Parked || old.Netns != m.SandboxPath(from) || !isNetnsMount(old.Netns) {
		return false, err
	}
	// Pinned at the new path, recorded under the new id, and only then
	// forgotten under the old one: its addresses stay taken throughout
	// (an allocation running meanwhile sees them held, twice at worst),
	// and a crash in between leaves two records of one sandbox, which
	// the removal of either takes apart without the links the other
	// claims (detach). The old pin stays until the old container's
	// RemoveSandbox, off the successor's way; its files move over (the
	// successor's rewrites them in place: on ext4 a new file costs more
	// the more files came and went in the last minute).
	path := m.SandboxPath(to)
	if err := pinNetns(old.Netns, path); err != nil {
		return false, err
	}
	if err := os.Rename(m.filesDir(from), m.filesDir(to)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	rec := *old
	rec.Endpoint.ID, rec.Netns = to, path
	if err := writeEndpoint(m.stateDir, &rec); err != nil {
		return false, err
	}
	return true, removeEndpoint(m.stateDir, from)
}

// pinNetns bind-mounts the network namespace pinned at from to path too.
func pinNetns(from, path string) error {
	if isNetnsMount(path) {
		return nil
	}
	if err := mountPoint(path); err != nil {
		return err
	}
	if err := unix.Mount(from, path, "", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("bind netns to %s: %w", path, err)
	}
	return nil
}

// unclaimed drops from links those another container's record holds: a
// parked sandbox recorded twice (Adopt interrupted) is one namespace, whose
// links belong to the container that adopted it.
func (m *Manager) unclaimed(id string, links []Interface) ([]Interface, error) {
	st, err := m.read()
	if err != nil {
		return nil, err
	}
	claimed := map[string]bool{}
	for other, r := range st.Endpoints {
		if other != id {
			for _, i := range r.Interfaces {
				claimed[i.HostVeth] = true
			}
		}
	}
	var out []Interface
	for _, l := range links {
		if !claimed[l.HostVeth] {
			out = append(out, l)
		}
	}
	return out, nil
}
