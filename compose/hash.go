package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
)

// ConfigHash is the hash a service's containers are labelled with
// (com.docker.compose.config-hash): the service definition without what
// must not force a recreate (build, pull_policy, scale and
// deploy.replicas, depends_on, profiles), plus what compose forgets — the
// content of the service's configs and secrets. env_file values are in it
// through the resolved environment; the env_file paths themselves are not,
// so moving an unchanged file does not recreate.
func ConfigHash(p *types.Project, s types.ServiceConfig) (string, error) {
	s = stripped(s)
	def, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("config hash: %w", err)
	}
	h := sha256.New()
	h.Write(def)
	for _, c := range s.Configs {
		if err := hashContent(h, "config", c.Source, types.FileObjectConfig(p.Configs[c.Source]), p.Environment); err != nil {
			return "", err
		}
	}
	for _, sc := range s.Secrets {
		if err := hashContent(h, "secret", sc.Source, types.FileObjectConfig(p.Secrets[sc.Source]), p.Environment); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// stripped copies the service without the fields that must not move the
// hash; the copy shares nothing it modifies with the original.
func stripped(s types.ServiceConfig) types.ServiceConfig {
	s.Build = nil
	s.PullPolicy = ""
	s.Scale = nil
	s.DependsOn = nil
	s.Profiles = nil
	s.EnvFiles = nil
	s.LabelFiles = nil
	s.Extends = nil
	if s.Deploy != nil {
		d := *s.Deploy
		d.Replicas = nil
		s.Deploy = &d
		// a deploy: section holding only replicas must hash like none
		if reflect.DeepEqual(d, types.DeployConfig{}) {
			s.Deploy = nil
		}
	}
	s.Configs = slices.Clone(s.Configs)
	s.Secrets = slices.Clone(s.Secrets)
	return s
}

// hashContent writes a length-prefixed record of one config or secret's
// content so that two sources cannot collide by concatenation.
func hashContent(w io.Writer, kind, name string, def types.FileObjectConfig, env types.Mapping) error {
	var content []byte
	switch {
	case def.Content != "":
		content = []byte(def.Content)
	case def.Environment != "":
		content = []byte(env[def.Environment])
	case def.File != "":
		b, err := os.ReadFile(def.File)
		if err != nil {
			return fmt.Errorf("%s %q: %w", kind, name, err)
		}
		content = b
	}
	sum := sha256.Sum256(content)
	fmt.Fprintf(w, "\x00%s:%d:%s:%x", kind, len(name), name, sum)
	return nil
}
