package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/berth-dev/berth/builder"
	"github.com/berth-dev/berth/driver"
	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/state"
)

// The native driver is the machine; it is opened once per process.
func init() { machineDriver = openNative }

var native0 struct {
	once sync.Once
	d    *native.Driver
	err  error
}

func openNative(ctx context.Context) (driver.Driver, error) {
	d, err := nativeDriver(ctx)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// nativeDriver is openNative for commands that need more than the plan
// operations (logs, exec, ps, volumes).
func nativeDriver(context.Context) (*native.Driver, error) {
	native0.once.Do(func() {
		native0.d, native0.err = native.New(native.Options{
			Root: global.root, RunRoot: global.runRoot, Build: buildImage,
		})
	})
	return native0.d, native0.err
}

// openBuilder opens the builder with RUN steps on berth's build bridge
// (the default network reaches the outside through berth's NAT), falling
// back to the host network with a warning.
func openBuilder(progress io.Writer) (*builder.Builder, error) {
	b, err := builder.Open(global.root, progress)
	if err != nil {
		return nil, err
	}
	if err := b.UseBridgeNetwork(global.root, global.runRoot); err != nil {
		fmt.Fprintf(os.Stderr, "berth: warning: RUN steps use the host network: %v\n", err)
	}
	return b, nil
}

// upImages builds each service image once per process: the reconciler's
// builds and those that service: additional contexts need meet there.
var upImages = &builder.ServiceImages{}

func init() { upImages.Build = buildServiceImage }

// buildImage builds a service's image with berth's builder when the
// reconciler asks for it (build: sections, up --build).
func buildImage(ctx context.Context, s state.ImageSpec) (state.ImageRef, error) {
	res, err := upImages.Do(ctx, s)
	if err != nil {
		return state.ImageRef{}, err
	}
	return state.ImageRef{Ref: s.Ref, Digest: res.ID.String()}, nil
}

func buildServiceImage(ctx context.Context, s state.ImageSpec) (*builder.Result, error) {
	var progress io.Writer = os.Stderr
	if global.progress == "quiet" {
		progress = nil
	}
	b, err := openBuilder(progress)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	o := builder.SpecOptions(s)
	o.Progress = progress
	o.ServiceImage = upImages.Resolver(s)
	return b.Build(ctx, o)
}
