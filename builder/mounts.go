package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// cacheMount returns the host directory of a RUN --mount=type=cache and a
// function that ends its use. sharing=locked serialises users of one id;
// shared and private let them run together.
func (b *Builder) cacheMount(m *instructions.Mount) (string, func(), error) {
	id := m.CacheID
	if id == "" {
		id = m.Target
	}
	sum := sha256.Sum256([]byte(id))
	dir := filepath.Join(b.root, "cachemounts", hex.EncodeToString(sum[:16]))
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		mode := os.FileMode(0o755)
		if m.Mode != nil {
			mode = os.FileMode(*m.Mode)
		}
		if err := os.MkdirAll(dir, mode); err != nil {
			return "", func() {}, err
		}
		os.Chmod(dir, mode)
		if m.UID != nil || m.GID != nil {
			uid, gid := 0, 0
			if m.UID != nil {
				uid = int(*m.UID)
			}
			if m.GID != nil {
				gid = int(*m.GID)
			}
			os.Chown(dir, uid, gid)
		}
	}
	if m.CacheSharing != instructions.MountSharingLocked {
		return dir, func() {}, nil
	}
	mu, _ := b.locks.LoadOrStore(dir, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return dir, mu.(*sync.Mutex).Unlock, nil
}

// bindSource makes the source of a RUN --mount=type=bind. From the build
// context it is a private copy of the selected, non-ignored files, so that
// neither ignored files nor writes reach the user's directory; from a stage
// or image it is a throwaway rootfs of it.
func (r *buildRun) bindSource(ctx context.Context, st *stageState, m *instructions.Mount) (string, func(), error) {
	src, err := r.source(ctx, m.From)
	if err != nil {
		return "", func() {}, err
	}
	fs, ignored, err := src.open(ctx)
	if err != nil {
		src.close()
		return "", func() {}, err
	}
	if !src.isContext {
		p, err := securejoin.SecureJoin(fs.rootPath, m.Source)
		if err != nil {
			src.close()
			return "", func() {}, err
		}
		return p, src.close, nil
	}
	defer src.close()
	tmp, err := os.MkdirTemp("", "berth-bind-")
	if err != nil {
		return "", func() {}, err
	}
	done := func() { os.RemoveAll(tmp) }
	ms, err := selectSources(fs, []string{orDot(m.Source)}, selectOptions{ignored: ignored})
	if err == nil {
		var root *rootDir
		if root, err = openRootDir(tmp); err == nil {
			err = copyMatches(fs, root, ms, "/", "/", copyOptions{uid: -1, gid: -1, keepOwner: true})
			root.Close()
		}
	}
	if err != nil {
		done()
		return "", func() {}, fmt.Errorf("--mount=type=bind,source=%s: %w", m.Source, err)
	}
	if len(ms) == 1 && !ms[0].dir {
		return filepath.Join(tmp, filepath.Base(ms[0].rel)), done, nil
	}
	return tmp, done, nil
}

// bindKeys identify what RUN --mount=type=bind steps see, for the cache
// key: a content digest of context sources, the key of stage or image
// sources.
func (r *buildRun) bindKeys(ctx context.Context, ms []*instructions.Mount) ([]string, error) {
	var keys []string
	for _, m := range ms {
		if m.Type != instructions.MountTypeBind {
			continue
		}
		src, err := r.source(ctx, m.From)
		if err != nil {
			return nil, err
		}
		k := src.key
		if k == "" {
			k, err = r.contentKey(ctx, src, orDot(m.Source))
		}
		src.close()
		if err != nil {
			return nil, fmt.Errorf("--mount=type=bind,source=%s: %w", m.Source, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (r *buildRun) contentKey(ctx context.Context, src *copySource, source string) (string, error) {
	fs, ignored, err := src.open(ctx)
	if err != nil {
		return "", err
	}
	ms, err := selectSources(fs, []string{source}, selectOptions{ignored: ignored})
	if err != nil {
		return "", err
	}
	var fh *fileHashes
	if fs == r.ctx.fs {
		fh = r.hashes
	}
	return digestMatches(fs, ms, fh)
}

func orDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}
