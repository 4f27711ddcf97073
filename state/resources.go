package state

// ImageSpec says which image a service needs and how to get it.
type ImageSpec struct {
	Ref        string // name:tag (or name@digest) the containers use
	PullPolicy string // always, missing, never, build, daily... as compose
	Build      *BuildSpec
	Platform   string
}

// BuildSpec is a service's build: section.
type BuildSpec struct {
	Context            string // absolute directory
	Dockerfile         string // path relative to Context, or absolute
	DockerfileInline   string
	Args               map[string]string
	Target             string
	Tags               []string
	Labels             map[string]string
	AdditionalContexts map[string]string
	NoCache            bool
	Pull               bool
	Network            string
	// Secrets are build.secrets by id (the target, else the source):
	// a file, or the value of an inline or environment secret.
	Secrets map[string]BuildSecret `json:",omitempty"`
	// SSH are build.ssh agents by id: a socket or key files, none for
	// $SSH_AUTH_SOCK.
	SSH map[string][]string `json:",omitempty"`
	// ServiceContexts are the images of the services that
	// additional_contexts name as service:NAME, by name.
	ServiceContexts map[string]ImageSpec `json:",omitempty"`
}

// BuildSecret is where one build secret's value comes from.
type BuildSecret struct {
	File  string `json:",omitempty"`
	Value string `json:"-"` // never written out with the spec
}

// ImageRef is an image present in the store.
type ImageRef struct {
	Ref    string
	Digest string // image ID: digest of the image config
}

// NetworkSpec is one compose network.
type NetworkSpec struct {
	Name       string // full name: <project>_<key>, or the external/explicit name
	Key        string // key in the compose file
	Project    string
	Driver     string
	DriverOpts map[string]string
	Internal   bool
	EnableIPv6 bool
	Attachable bool
	External   bool
	IPAM       []Subnet
	Labels     map[string]string
	Hash       string
}

// Subnet is one ipam.config entry.
type Subnet struct {
	Subnet  string
	Gateway string
	IPRange string
}

// VolumeSpec is one compose volume.
type VolumeSpec struct {
	Name       string
	Key        string
	Project    string
	Driver     string
	DriverOpts map[string]string
	External   bool
	Labels     map[string]string
	Hash       string
}
