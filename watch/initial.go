package watch

import (
	"io/fs"
	"path/filepath"

	"github.com/berth-dev/berth/state"
)

// initialTree syncs every file of a rule's path that the rule wants.
func initialTree(cs []state.Container, r *rule) error {
	return filepath.WalkDir(r.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// include patterns name files; a directory is only pruned
			// when it is ignored
			if p != r.Path && r.excluded(p) {
				return filepath.SkipDir
			}
			return nil
		}
		if !r.matches(p) {
			return nil
		}
		return syncPath(cs, p, r.targetOf(p))
	})
}
