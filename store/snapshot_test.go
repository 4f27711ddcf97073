package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestConcurrentPrepare prepares many containers of one image at once, as
// a driver starting replicas in parallel does: one unpack wins, all share it.
func TestConcurrentPrepare(t *testing.T) {
	needRoot(t)
	s := openStore(t)
	ctx := context.Background()
	img, err := s.ImportRootfs(ctx, busyboxRootfs(t), "bb", ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Prepare(ctx, fmt.Sprint("c", i), img)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := len(readDir(s.path("layers"))); n != 1 {
		t.Errorf("%d unpacked layer dirs, want 1", n)
	}
	if n := len(readDir(s.path("tmp"))); n != 0 {
		t.Errorf("%d scratch entries left", n)
	}
	for i := range errs {
		s.RemoveSnapshot(ctx, fmt.Sprint("c", i))
	}
}
