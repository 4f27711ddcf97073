package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runHooks runs OCI hooks in the runtime's namespaces, each with the
// container's state JSON on stdin. The first failure stops the list.
// createContainer and startContainer hooks (which belong inside the
// container's namespaces) are run here too, before the process is started.
func runHooks(ctx context.Context, hooks []specs.Hook, st specs.State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		if err := runHook(ctx, h, b); err != nil {
			return err
		}
	}
	return nil
}

func runHook(ctx context.Context, h specs.Hook, state []byte) error {
	timeout := time.Minute
	if h.Timeout != nil && *h.Timeout > 0 {
		timeout = time.Duration(*h.Timeout) * time.Second
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	}
	cmd.Env = h.Env
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("hook %s: %w: %s", h.Path, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func hooksOf(spec *specs.Spec) *specs.Hooks {
	if spec.Hooks == nil {
		return &specs.Hooks{}
	}
	return spec.Hooks
}

func warnHook(which, id string, err error) {
	fmt.Fprintf(os.Stderr, "berth monitor: warning: %s hook of %s: %v\n", which, id, err)
}
