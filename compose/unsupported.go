package compose

import (
	"strings"

	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/compose-spec/compose-go/v2/tree"
)

// Unimplemented is THE list of compose attributes berth accepts but does not
// act on yet. Everything else the specification defines is carried into
// state.Desired. The check is fail-closed: an attribute a newer
// specification adds is reported until it is handled and kept off this list.
// Shrink this list as features land.
var Unimplemented = []string{
	"jobs",
	"models",
	"services.*.annotations",
	"services.*.attach",
	"services.*.blkio_config",
	"services.*.build.cache_from",
	"services.*.build.cache_to",
	"services.*.build.entitlements",
	"services.*.build.extra_hosts",
	"services.*.build.isolation",
	"services.*.build.no_cache_filter",
	"services.*.build.platforms",
	"services.*.build.privileged",
	"services.*.build.provenance",
	"services.*.build.sbom",
	"services.*.build.shm_size",
	"services.*.build.ulimits",
	"services.*.cgroup",
	"services.*.cgroup_parent",
	"services.*.cpu_count",
	"services.*.cpu_percent",
	"services.*.cpu_period",
	"services.*.cpu_quota",
	"services.*.cpu_rt_period",
	"services.*.cpu_rt_runtime",
	"services.*.credential_spec",
	"services.*.deploy.endpoint_mode",
	"services.*.deploy.labels",
	"services.*.deploy.mode",
	"services.*.deploy.placement",
	"services.*.deploy.resources.reservations.cpus",
	"services.*.deploy.resources.reservations.devices",
	"services.*.deploy.resources.reservations.generic_resources",
	"services.*.deploy.restart_policy.delay",
	"services.*.deploy.restart_policy.window",
	"services.*.deploy.rollback_config.max_failure_ratio",
	"services.*.deploy.update_config.max_failure_ratio",
	"services.*.device_cgroup_rules",
	"services.*.external_links",
	"services.*.gpus",
	"services.*.isolation",
	"services.*.logging",
	"services.*.log_driver",
	"services.*.log_opt",
	"services.*.mem_swappiness",
	"services.*.memswap_limit",
	"services.*.models",
	"services.*.networks.*.driver_opts",
	"services.*.networks.*.priority",
	"services.*.networks.*.use_service_name_alias",
	"services.*.oom_kill_disable",
	"services.*.pre_start",
	"services.*.provider",
	"services.*.pull_refresh_after",
	"services.*.runtime",
	"services.*.storage_opt",
	"services.*.umask",
	"services.*.use_api_socket",
	"services.*.userns_mode",
	"services.*.uts",
	"services.*.volume_driver",
	"services.*.volumes.[].bind.recursive",
	"services.*.volumes.[].bind.selinux",
	"services.*.volumes.[].image",
	"services.*.volumes.[].volume.labels",
	"services.*.volumes.[].volume.subpath",
	"services.*.volumes_from",
	"configs.*.external",
	"configs.*.template_driver",
	"secrets.*.external",
	"secrets.*.driver",
	"secrets.*.driver_opts",
	"secrets.*.template_driver",
	"networks.*.enable_ipv4",
	"networks.*.ipam.driver",
	"networks.*.ipam.options",
	"networks.*.ipam.config.[].aux_addresses",
}

// supportedAttributes are the attribute paths of the specification berth
// acts on: compose-go's schema.AttributePaths() without those under
// Unimplemented. Computing them takes ~5 ms (the schema is unmarshalled
// and walked, then filtered) at the start of every load, so they are a
// table (supported_table.go) that TestSupportedTable keeps equal to the
// computation: a compose-go upgrade or an edit of Unimplemented fails it
// until the table is regenerated (go test ./compose -run
// TestSupportedTable -update).
func supportedAttributes() []tree.Path { return supportedTable }

// computeSupported is what supportedTable must hold.
func computeSupported() []tree.Path {
	var out []tree.Path
	for _, p := range schema.AttributePaths() {
		if !underUnimplemented(string(p)) {
			out = append(out, p)
		}
	}
	return out
}

func underUnimplemented(p string) bool {
	for _, u := range Unimplemented {
		if p == u || strings.HasPrefix(p, u+".") {
			return true
		}
	}
	return false
}

// Warning is the single line listing the unimplemented attributes a
// project uses, or "" when it uses none.
func Warning(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	return "not implemented yet, ignored: " + strings.Join(paths, ", ")
}
