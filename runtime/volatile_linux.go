package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ClearVolatile lets an overlay that was mounted with "volatile" be mounted
// again (a restart, a start after a stop). The kernel marks such a mount's
// work directory (work/incompat/volatile) and refuses every later mount
// while the mark is there: it means the upper layer skipped its syncs and
// may have lost writes in a crash. A container's writable layer keeps what
// the page cache kept, volatile or not, so the mark is cleared before each
// mount, as containers/storage does for its volatile mounts.
func ClearVolatile(m specs.Mount) error {
	if m.Type != "overlay" || !slices.Contains(m.Options, "volatile") {
		return nil
	}
	for _, o := range m.Options {
		if w, ok := strings.CutPrefix(o, "workdir="); ok {
			return os.RemoveAll(filepath.Join(w, "work", "incompat", "volatile"))
		}
	}
	return nil
}
