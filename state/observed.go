package state

import "time"

// Container statuses, as docker reports them.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

// Health values.
const (
	HealthNone      = ""
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Observed is what the machine has for one project, read fresh each pass.
type Observed struct {
	Project    string
	Containers []Container
	Networks   []Network
	Volumes    []Volume
	Images     []ImageRef
}

// Container is one existing container.
type Container struct {
	ID          string
	Name        string
	Project     string
	Service     string
	Number      int
	OneOff      bool
	ConfigHash  string
	ImageDigest string
	Image       string
	Labels      map[string]string
	Status      string
	Health      string
	ExitCode    int
	Created     time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	Pid         int
	Networks    []string // full names of the networks it is attached to
}

// Network is one existing network.
type Network struct {
	Name   string
	ID     string
	Hash   string
	Labels map[string]string
}

// Volume is one existing volume.
type Volume struct {
	Name       string
	Hash       string
	Labels     map[string]string
	Mountpoint string
}
