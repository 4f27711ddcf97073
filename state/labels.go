package state

// Label names berth puts on every object it creates. They are compose's own,
// so tools that understand docker compose understand berth's objects too.
const (
	LabelProject     = "com.docker.compose.project"
	LabelService     = "com.docker.compose.service"
	LabelNumber      = "com.docker.compose.container-number"
	LabelOneOff      = "com.docker.compose.oneoff"
	LabelConfigHash  = "com.docker.compose.config-hash"
	LabelImage       = "com.docker.compose.image" // image digest the container was created from
	LabelWorkingDir  = "com.docker.compose.project.working_dir"
	LabelConfigFiles = "com.docker.compose.project.config_files"
	LabelEnvFile     = "com.docker.compose.project.environment_file"
	LabelNetwork     = "com.docker.compose.network"
	LabelVolume      = "com.docker.compose.volume"
	LabelDependsOn   = "com.docker.compose.depends_on"
	LabelVersion     = "com.docker.compose.version"
	LabelReplace     = "com.docker.compose.replace" // name of the container this one replaces
	// LabelSandboxFrom is the id of the stopped container whose network
	// sandbox a stop-first successor takes over (berth's own).
	LabelSandboxFrom = "org.berth.sandbox-from"
)
