package network

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/topdir"
)

// Options configures a Manager.
type Options struct {
	Root    string // state root (e.g. /var/lib/berth); allocations go to Root/network
	RunRoot string // runtime root (e.g. /run/berth); sandboxes go to RunRoot/netns
	// HostNetns is the path of the namespace that plays the host (bridges,
	// nftables, the DNS responder). "" is this process's namespace; tests
	// point it at a throwaway one.
	HostNetns string
	Pool4     Pool // zero: DefaultPool4
	Pool6     Pool // zero: DefaultPool6
	// DNSCommand builds the command that runs the DNS responder
	// (ServeDNS). nil: this executable with "network dns-server".
	DNSCommand func(stateDir, runDir string) *exec.Cmd
	// NoDNS disables the responder (resolv.conf then lists upstreams).
	NoDNS bool
}

// Manager converges bridges, sandboxes, endpoints, nftables and DNS records.
// Its methods are safe for concurrent use, also from several processes.
type Manager struct {
	opt      Options
	stateDir string
	runDir   string
	host     netns.NsHandle
	nl       *netlink.Handle
	// allocMu queues this process's goroutines for the allocation lock
	// before the flock: 50 threads blocked in flock are all woken at
	// every release, and each wakeup competes for the CPU with the
	// holder.
	allocMu sync.Mutex
	// realizing bounds how many attaches of this process make their
	// links at once: the kernel serialises link changes (rtnl) anyway,
	// and fifty goroutines in netlink calls only delay the holder of the
	// allocation lock (each of its syscalls gives up its P).
	realizing chan struct{}
}

// New opens the network layer rooted at opt.Root/opt.RunRoot.
func New(opt Options) (*Manager, error) {
	if opt.Root == "" || opt.RunRoot == "" {
		return nil, fmt.Errorf("network: Root and RunRoot are required")
	}
	if !opt.Pool4.Base.IsValid() {
		opt.Pool4 = DefaultPool4
	}
	if !opt.Pool6.Base.IsValid() {
		opt.Pool6 = DefaultPool6
	}
	m := &Manager{opt: opt, stateDir: filepath.Join(opt.Root, "network"), runDir: filepath.Join(opt.RunRoot, "network"),
		realizing: make(chan struct{}, 4)}
	var err error
	if opt.HostNetns == "" {
		m.host, err = netns.Get()
	} else {
		m.host, err = netns.GetFromPath(opt.HostNetns)
	}
	if err != nil {
		return nil, fmt.Errorf("network: host namespace: %w", err)
	}
	m.nl, err = netlink.NewHandleAt(m.host)
	if err != nil {
		m.host.Close()
		return nil, fmt.Errorf("network: netlink: %w", err)
	}
	// a directory per container for its hosts, resolv.conf and hostname
	if err := topdir.MkdirAll(filepath.Join(m.runDir, "containers"), 0o755); err != nil {
		m.Close()
		return nil, fmt.Errorf("network: %w", err)
	}
	if err := m.linkEndpoints(); err != nil {
		m.Close()
		return nil, fmt.Errorf("network: %w", err)
	}
	return m, nil
}

// linkEndpoints makes <root>/network/endpoints a symbolic link to
// <run-root>/network/endpoints: endpoint records describe what lives and
// dies with the run root (the namespaces pinned there, their veths, the
// running containers), so they live there too: on a tmpfs /run (most
// systems) a file costs microseconds to write where an ext4 disk takes
// about a millisecond per file created or renamed, even without an fsync
// (measured on the development machine, whose /run is on ext4). After
// a reboot the link points at nothing: no endpoint, which is the truth.
// Readers that only know the state directory (the DNS responder) follow
// the link. Records a root kept on disk are moved on first use.
func (m *Manager) linkEndpoints() error {
	target, err := filepath.Abs(filepath.Join(m.runDir, endpointsDir)) // a link resolves relative targets from its own directory
	if err != nil {
		return err
	}
	link := filepath.Join(m.stateDir, endpointsDir)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	unlock, err := lockState(m.stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	fi, err := os.Lstat(link)
	switch {
	case err == nil && fi.Mode()&os.ModeSymlink != 0:
		if cur, _ := os.Readlink(link); cur == target {
			return nil
		}
		// Another run root's records stay there; this one's start empty.
		if err := os.Remove(link); err != nil {
			return err
		}
	case err == nil && fi.IsDir():
		recs, _, err := loadEndpoints(m.stateDir)
		if err != nil {
			return err
		}
		for _, r := range recs {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := writeFileRenamed(filepath.Join(target, r.Endpoint.ID+".json"), b, 0o644); err != nil {
				return err
			}
		}
		if err := os.RemoveAll(link); err != nil {
			return err
		}
	case err == nil:
		return fmt.Errorf("%s is neither a directory nor a link", link)
	case !os.IsNotExist(err):
		return err
	}
	return os.Symlink(target, link)
}

// Close releases the Manager's handles; nothing on the machine changes.
func (m *Manager) Close() error {
	m.nl.Close()
	return m.host.Close()
}

// SandboxPath is where the network namespace of container id is pinned.
func (m *Manager) SandboxPath(id string) string {
	return filepath.Join(m.opt.RunRoot, "netns", id)
}

// filesDir holds a container's hosts, resolv.conf and hostname.
func (m *Manager) filesDir(id string) string { return filepath.Join(m.runDir, "containers", id) }

// mutate runs fn with the whole allocation state loaded and the allocation
// lock held, and saves what fn changed when it returns. OS changes fn
// makes happen under the lock. fn replaces endpoint records rather than
// changing them in place (saveState writes the replaced ones).
func (m *Manager) mutate(ctx context.Context, fn func(st *diskState) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	unlock, err := lockState(m.stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	st, raw, err := loadStateRaw(m.stateDir)
	if err != nil {
		return err
	}
	prev := maps.Clone(st.Endpoints)
	ferr := fn(st)
	// Save even on failure: allocations made before the failure describe
	// objects that now exist and must be found again to be cleaned.
	if err := saveState(m.stateDir, st, prev, raw); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

// read loads the allocation state without locking (a snapshot in which
// every record is whole: writes are atomic renames).
func (m *Manager) read() (*diskState, error) { return loadState(m.stateDir) }

// lockEndpoint serialises the operations on one container's endpoint
// (Attach, Detach, RemoveSandbox), across processes. Those of different
// containers run in parallel; each takes the allocation lock only for
// what is shared (addresses, ports, the firewall table). unlock(true)
// removes the lock file (when the container's sandbox goes).
func (m *Manager) lockEndpoint(id string) (unlock func(remove bool), err error) {
	return lockRemovable(filepath.Join(m.runDir, "locks", id))
}

// record reads container id's endpoint record (nil: none), moving the
// endpoints an older berth kept in state.json to their own files first.
func (m *Manager) record(ctx context.Context, id string) (*endpointRecord, error) {
	r, _, err := readEndpoint(m.stateDir, id)
	if err != nil || r != nil {
		return r, err
	}
	_, legacy, err := loadNetworks(m.stateDir)
	if err != nil || len(legacy) == 0 {
		return nil, err
	}
	if err := m.mutate(ctx, func(*diskState) error { return nil }); err != nil {
		return nil, err
	}
	r, _, err = readEndpoint(m.stateDir, id)
	return r, err
}

// Networks lists the networks berth manages, sorted by name.
func (m *Manager) Networks(ctx context.Context) ([]NetworkInfo, error) {
	nets, _, err := loadNetworks(m.stateDir)
	if err != nil {
		return nil, err
	}
	out := make([]NetworkInfo, 0, len(nets))
	for _, n := range nets {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// Network returns one network, or ErrNotFound.
func (m *Manager) Network(ctx context.Context, name string) (NetworkInfo, error) {
	nets, _, err := loadNetworks(m.stateDir)
	if err != nil {
		return NetworkInfo{}, err
	}
	n, ok := nets[name]
	if !ok {
		return NetworkInfo{}, fmt.Errorf("network %s: %w", name, ErrNotFound)
	}
	return *n, nil
}

// Endpoints returns the containers attached to a network ("" = all), by id.
func (m *Manager) Endpoints(ctx context.Context, network string) (map[string]Attachment, error) {
	st, err := m.read()
	if err != nil {
		return nil, err
	}
	out := map[string]Attachment{}
	for id, r := range st.Endpoints {
		if network != "" && !r.on(network) {
			continue
		}
		out[id] = m.attachment(r)
	}
	return out, nil
}

// on tells whether r is attached to network, or was and may still be
// (Stale: links a crash may have left).
func (r *endpointRecord) on(network string) bool {
	for _, i := range r.Interfaces {
		if i.Network == network {
			return true
		}
	}
	for _, i := range r.Stale {
		if i.Network == network {
			return true
		}
	}
	return false
}

func (m *Manager) attachment(r *endpointRecord) Attachment {
	dir := m.filesDir(r.Endpoint.ID)
	return Attachment{
		Name:           r.Endpoint.Name,
		NetnsPath:      r.Netns,
		HostsPath:      filepath.Join(dir, "hosts"),
		ResolvConfPath: filepath.Join(dir, "resolv.conf"),
		HostnamePath:   filepath.Join(dir, "hostname"),
		Interfaces:     append([]Interface(nil), r.Interfaces...),
		Ports:          append([]PublishedPort(nil), r.Ports...),
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
