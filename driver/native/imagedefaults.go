package native

import (
	"encoding/json"
	"time"

	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/store"
)

// dockerConfig is the part of a Docker image config that OCI's ImageConfig
// leaves out but docker honours: the HEALTHCHECK of a Dockerfile.
type dockerConfig struct {
	Config struct {
		Healthcheck *struct {
			Test          []string
			Interval      time.Duration
			Timeout       time.Duration
			StartPeriod   time.Duration
			StartInterval time.Duration
			Retries       int
		}
	} `json:"config"`
}

// imageDefaults fills what the compose file left unset from the image, as
// docker does: the healthcheck and the stop signal. Entrypoint, command,
// environment, user and working dir are merged at start (buildSpec).
func (d *Driver) imageDefaults(s *state.ContainerSpec, img *store.Image) {
	if s.StopSignal == "" {
		s.StopSignal = img.Config.Config.StopSignal
	}
	if s.Healthcheck != nil {
		return
	}
	b, err := d.store.ReadBlob(img.ConfigDigest)
	if err != nil {
		return
	}
	var dc dockerConfig
	if json.Unmarshal(b, &dc) != nil || dc.Config.Healthcheck == nil || len(dc.Config.Healthcheck.Test) == 0 {
		return
	}
	h := dc.Config.Healthcheck
	s.Healthcheck = &state.Healthcheck{
		Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod,
		StartInterval: h.StartInterval, Retries: h.Retries, Disable: h.Test[0] == "NONE",
	}
}
