package builder

import (
	"runtime"
	"sort"
	"strings"
)

// vars is an ordered KEY=VALUE list with shell.EnvGetter's methods, so
// buildkit's lexer can expand words against it. Order matters: it is the
// order of the process environment and of the cache key.
type vars struct {
	keys []string
	vals map[string]string
}

func newVars() *vars { return &vars{vals: map[string]string{}} }

func (v *vars) Get(k string) (string, bool) {
	s, ok := v.vals[k]
	return s, ok
}

func (v *vars) Keys() []string { return append([]string(nil), v.keys...) }

func (v *vars) Set(k, val string) {
	if _, ok := v.vals[k]; !ok {
		v.keys = append(v.keys, k)
	}
	v.vals[k] = val
}

func (v *vars) clone() *vars {
	c := &vars{keys: append([]string(nil), v.keys...), vals: make(map[string]string, len(v.vals))}
	for k, s := range v.vals {
		c.vals[k] = s
	}
	return c
}

// List renders KEY=VALUE in insertion order.
func (v *vars) List() []string {
	out := make([]string, 0, len(v.keys))
	for _, k := range v.keys {
		out = append(out, k+"="+v.vals[k])
	}
	return out
}

// overlay is an EnvGetter where ENV values win over ARG values, as in Docker.
type overlay struct{ env, args *vars }

func (o overlay) Get(k string) (string, bool) {
	if s, ok := o.env.Get(k); ok {
		return s, true
	}
	return o.args.Get(k)
}

func (o overlay) Keys() []string {
	keys := o.env.Keys()
	for _, k := range o.args.keys {
		if _, ok := o.env.vals[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// proxyArgs are usable in RUN without an ARG declaration and, as in Docker,
// stay out of the cache key and the image history.
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// hostPlatform is the only platform berth builds for: it runs what it builds.
func hostPlatform() (os, arch, variant string) {
	arch = runtime.GOARCH
	if arch == "arm" {
		variant = "v7"
	}
	if arch == "arm64" {
		variant = "v8"
	}
	return "linux", arch, variant
}

func formatPlatform(os, arch, variant string) string {
	if variant != "" && arch != "arm64" {
		return os + "/" + arch + "/" + variant
	}
	return os + "/" + arch
}

// platformMatches says whether a FROM --platform value names the host
// platform; berth runs RUN natively and has no emulation.
func platformMatches(p string) bool {
	os, arch, _ := hostPlatform()
	parts := strings.Split(strings.ToLower(p), "/")
	if len(parts) < 2 {
		return false
	}
	a := parts[1]
	switch a {
	case "x86_64", "x86-64":
		a = "amd64"
	case "aarch64":
		a = "arm64"
	}
	return parts[0] == os && a == arch
}

// predefinedArgs are the automatic platform ARGs of the global scope.
func predefinedArgs(target string, overrides map[string]string) *vars {
	os, arch, variant := hostPlatform()
	plat := formatPlatform(os, arch, variant)
	if target == "" {
		target = "default"
	}
	v := newVars()
	for _, kv := range [][2]string{
		{"BUILDPLATFORM", plat}, {"BUILDOS", os}, {"BUILDARCH", arch}, {"BUILDVARIANT", variant},
		{"TARGETPLATFORM", plat}, {"TARGETOS", os}, {"TARGETARCH", arch}, {"TARGETVARIANT", variant},
		{"TARGETSTAGE", target},
	} {
		val := kv[1]
		if o, ok := overrides[kv[0]]; ok {
			val = o
		}
		v.Set(kv[0], val)
	}
	return v
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
