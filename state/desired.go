// Package state is the plain data every other berth package shares: what the
// user asked for (Desired) and what the machine has (Observed). It does no I/O.
package state

import (
	"sort"
	"time"
)

// Desired is the whole desired state of one compose project.
type Desired struct {
	Project     string
	WorkingDir  string
	ConfigFiles []string
	EnvFiles    []string
	Services    map[string]*Service    // by service name
	Networks    map[string]NetworkSpec // by compose key
	Volumes     map[string]VolumeSpec  // by compose key
}

// ServiceNames returns the service names in sorted order.
func (d *Desired) ServiceNames() []string {
	names := make([]string, 0, len(d.Services))
	for n := range d.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Dependency is one depends_on entry.
type Dependency struct {
	Condition string // ConditionStarted, ConditionHealthy, ConditionCompletedSuccessfully
	Required  bool
	Restart   bool // recreate the dependent when the dependency is recreated
}

const (
	ConditionStarted               = "service_started"
	ConditionHealthy               = "service_healthy"
	ConditionCompletedSuccessfully = "service_completed_successfully"
)

// Update orders from deploy.update_config.order.
const (
	OrderStopFirst  = "stop-first"
	OrderStartFirst = "start-first"
)

// UpdateConfig is deploy.update_config (and rollback_config) honoured outside swarm.
type UpdateConfig struct {
	Order         string
	Parallelism   int
	Delay         time.Duration
	Monitor       time.Duration
	FailureAction string
}

// Service is one compose service: how many replicas, what they depend on, and
// the container every replica is made from.
type Service struct {
	Name      string
	Replicas  int
	Image     ImageSpec
	DependsOn map[string]Dependency
	Update    UpdateConfig
	Rollback  UpdateConfig
	// Container is the replica-independent container definition; Replica
	// fills in the number, name and labels of one replica.
	Container ContainerSpec
	// ConfigHash is the hash of everything that must recreate a container
	// when it changes (see compose.ConfigHash).
	ConfigHash string
	Extensions map[string]any // x-* keys of the service
}

// Replica returns the ContainerSpec of replica n (1-based).
func (s *Service) Replica(n int) ContainerSpec {
	c := s.Container
	c.Service = s.Name
	c.Number = n
	c.ConfigHash = s.ConfigHash
	if c.Name == "" || s.Replicas > 1 || n > 1 {
		c.Name = ContainerName(c.Project, s.Name, n)
	}
	labels := make(map[string]string, len(c.Labels)+4)
	for k, v := range c.Labels {
		labels[k] = v
	}
	labels[LabelProject] = c.Project
	labels[LabelService] = s.Name
	labels[LabelNumber] = itoa(n)
	labels[LabelOneOff] = "False"
	labels[LabelConfigHash] = s.ConfigHash
	c.Labels = labels
	return c
}

// ContainerName is compose's name for replica n of a service.
func ContainerName(project, service string, n int) string {
	return project + "-" + service + "-" + itoa(n)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
