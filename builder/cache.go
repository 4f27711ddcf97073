package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// cacheKey chains a step onto its parent: the key of a step covers every
// step before it, so a changed step invalidates exactly itself and what
// follows.
func cacheKey(parent string, parts ...any) string {
	h := sha256.New()
	h.Write([]byte(parent))
	for _, p := range parts {
		h.Write([]byte{0})
		switch v := p.(type) {
		case string:
			h.Write([]byte(v))
		default:
			b, err := json.Marshal(v)
			if err != nil {
				panic(fmt.Sprintf("cache key part %T: %v", p, err))
			}
			h.Write(b)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// cacheRecord is what a filesystem step produced.
type cacheRecord struct {
	Layer   *Layer    `json:"layer,omitempty"` // nil: the step changed nothing
	Created time.Time `json:"created"`
}

// cacheIndex maps step keys to results, one small file per key under the
// state root, written atomically so it survives crashes and restarts.
type cacheIndex struct {
	dir string
}

func openCacheIndex(dir string) (*cacheIndex, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &cacheIndex{dir: dir}, nil
}

func (c *cacheIndex) path(key string) string {
	return filepath.Join(c.dir, "sha256-"+key[len("sha256:"):]+".json")
}

func (c *cacheIndex) get(key string) (*cacheRecord, bool) {
	data, err := os.ReadFile(c.path(key))
	if err != nil {
		return nil, false
	}
	var r cacheRecord
	if json.Unmarshal(data, &r) != nil {
		return nil, false
	}
	return &r, true
}

func (c *cacheIndex) put(key string, r *cacheRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path(key))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return errors.Join(errors.New("cache index write"), err)
	}
	return nil
}

// PruneStats says what Prune removed.
type PruneStats struct {
	Records     int // cache index entries
	CacheMounts int // RUN --mount=type=cache directories
}

// Prune drops cache records whose layer the store no longer has (the
// store's GC removed it) and, with all, every record and cache mount, and
// the build bridge (kept between builds) when no build uses it.
func (b *Builder) Prune(ctx context.Context, all bool) (PruneStats, error) {
	var st PruneStats
	entries, err := os.ReadDir(b.cache.dir)
	if err != nil {
		return st, err
	}
	for _, e := range entries {
		name := filepath.Join(b.cache.dir, e.Name())
		drop := all || strings.HasPrefix(e.Name(), ".tmp-")
		if !drop {
			var r cacheRecord
			data, err := os.ReadFile(name)
			drop = err != nil || json.Unmarshal(data, &r) != nil || (r.Layer != nil && !b.store.HasLayer(ctx, *r.Layer))
		}
		if drop && os.Remove(name) == nil {
			st.Records++
		}
	}
	if all {
		mounts, _ := os.ReadDir(filepath.Join(b.root, "cachemounts"))
		for _, m := range mounts {
			if os.RemoveAll(filepath.Join(b.root, "cachemounts", m.Name())) == nil {
				st.CacheMounts++
			}
		}
		os.RemoveAll(filepath.Join(b.root, "filehash"))
		if rm, ok := b.net.(interface{ Remove(context.Context) error }); ok {
			if err := rm.Remove(ctx); err != nil {
				return st, fmt.Errorf("build network: %w", err)
			}
		}
	}
	return st, nil
}
