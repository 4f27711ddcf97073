package builder

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is the image config a build evolves: OCI's, with Docker's
// Healthcheck, OnBuild and Shell, so docker load and skopeo see them.
type Image = dockerspec.DockerOCIImage

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// historyComment marks history entries the way buildkit does, so tools that
// recognise Dockerfile-built history render berth's the same.
const historyComment = "buildkit.dockerfile.v0"

// scratchImage is the config of FROM scratch.
func scratchImage() *Image {
	os, arch, variant := hostPlatform()
	img := &Image{}
	img.OS, img.Architecture, img.Variant = os, arch, variant
	img.RootFS.Type = "layers"
	img.Config.Env = []string{"PATH=" + defaultPath}
	return img
}

// parseImage decodes a stored image config and gives it the fields a build
// relies on.
func parseImage(data []byte) (*Image, error) {
	img := &Image{}
	if err := json.Unmarshal(data, img); err != nil {
		return nil, fmt.Errorf("decode image config: %w", err)
	}
	img.RootFS.Type = "layers"
	return img, nil
}

func cloneImage(img *Image) *Image {
	data, err := json.Marshal(img)
	if err != nil {
		panic(err) // a config we built always marshals
	}
	c := &Image{}
	if err := json.Unmarshal(data, c); err != nil {
		panic(err)
	}
	return c
}

// addHistory records one instruction, as docker history shows it.
func addHistory(img *Image, created time.Time, createdBy string, empty bool) {
	t := created
	img.History = append(img.History, ocispec.History{
		Created:    &t,
		CreatedBy:  createdBy,
		Comment:    historyComment,
		EmptyLayer: empty,
	})
}

func getEnv(img *Image, key string) (string, bool) {
	for _, kv := range img.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		if k == key {
			return v, true
		}
	}
	return "", false
}

func setEnv(img *Image, key, val string) {
	for i, kv := range img.Config.Env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			img.Config.Env[i] = key + "=" + val
			return
		}
	}
	img.Config.Env = append(img.Config.Env, key+"="+val)
}

// envVars is the ENV part of what expansion and RUN see.
func envVars(img *Image) *vars {
	v := newVars()
	for _, kv := range img.Config.Env {
		k, val, _ := strings.Cut(kv, "=")
		v.Set(k, val)
	}
	return v
}

func shellOf(img *Image) []string {
	if len(img.Config.Shell) > 0 {
		return img.Config.Shell
	}
	return []string{"/bin/sh", "-c"}
}

// commandLine turns a shell-or-exec form into argv.
func commandLine(img *Image, c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return append(append([]string(nil), shellOf(img)...), strings.Join(c.CmdLine, " "))
	}
	return append([]string(nil), c.CmdLine...)
}

// applyMeta applies an instruction that changes only the config. It returns
// false for instructions that touch the filesystem.
func applyMeta(st *stageState, c instructions.Command) (bool, error) {
	img := st.img
	switch c := c.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			setEnv(img, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if img.Config.Labels == nil {
			img.Config.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			img.Config.Labels[kv.Key] = kv.Value
		}
	case *instructions.MaintainerCommand:
		img.Author = c.Maintainer
	case *instructions.UserCommand:
		img.Config.User = c.User
	case *instructions.ShellCommand:
		img.Config.Shell = append([]string(nil), c.Shell...)
	case *instructions.CmdCommand:
		img.Config.Cmd = commandLine(img, c.ShellDependantCmdLine)
		st.cmdSet = true
	case *instructions.EntrypointCommand:
		img.Config.Entrypoint = commandLine(img, c.ShellDependantCmdLine)
		if !st.cmdSet {
			img.Config.Cmd = nil
		}
	case *instructions.ExposeCommand:
		if err := expose(img, c.Ports); err != nil {
			return true, err
		}
	case *instructions.VolumeCommand:
		if img.Config.Volumes == nil {
			img.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return true, fmt.Errorf("VOLUME specified can not be an empty string")
			}
			img.Config.Volumes[v] = struct{}{}
		}
	case *instructions.StopSignalCommand:
		img.Config.StopSignal = c.Signal
	case *instructions.HealthCheckCommand:
		h := *c.Health
		img.Config.Healthcheck = &h
	case *instructions.OnbuildCommand:
		img.Config.OnBuild = append(img.Config.OnBuild, c.Expression)
	case *instructions.ArgCommand:
		// handled by the stage's ARG scope; only history is recorded
	default:
		return false, nil
	}
	return true, nil
}

// portRange reads "80" or "8000-8010", as Docker expands ranges.
func portRange(s string) (int, int, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil || lo < 1 || lo > 65535 {
		return 0, 0, fmt.Errorf("bad port")
	}
	if !isRange {
		return lo, lo, nil
	}
	hi, err := strconv.Atoi(b)
	if err != nil || hi < lo || hi > 65535 || hi-lo > 1024 {
		return 0, 0, fmt.Errorf("bad range")
	}
	return lo, hi, nil
}

func expose(img *Image, ports []string) error {
	if img.Config.ExposedPorts == nil {
		img.Config.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range ports {
		for _, f := range strings.Fields(p) {
			port, proto, _ := strings.Cut(f, "/")
			if proto == "" {
				proto = "tcp"
			}
			proto = strings.ToLower(proto)
			if proto != "tcp" && proto != "udp" && proto != "sctp" {
				return fmt.Errorf("EXPOSE: invalid protocol %q", proto)
			}
			lo, hi, err := portRange(port)
			if err != nil {
				return fmt.Errorf("EXPOSE: invalid port %q", f)
			}
			for p := lo; p <= hi; p++ {
				img.Config.ExposedPorts[strconv.Itoa(p)+"/"+proto] = struct{}{}
			}
		}
	}
	return nil
}
