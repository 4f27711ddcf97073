#!/usr/bin/env bash
# Runs the opencontainers/runtime-tools validation suite (v0.9.0, the tag
# the issue's runc figures come from) against `berth runtime`, runc and
# crun, and prints the three tallies side by side.
#
#   conformance/run.sh [berth-binary]      (root; ~10 minutes)
#
# The suite predates Go modules: it is fetched through the module proxy
# into a temporary directory, given a go.mod pinned to the dependency
# commits of its Godeps.json, and built there. Nothing is vendored here.
# Per-test TAP output is kept under $OUT (default /tmp/berth-conformance).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
here="$(cd "$(dirname "$0")" && pwd)"
berth="${1:-$here/../bin/berth}"
berth="$(readlink -f "$berth")"
OUT="${OUT:-/tmp/berth-conformance}"
RTT_VERSION="${RTT_VERSION:-v0.9.0}"
TEST_TIMEOUT="${TEST_TIMEOUT:-120}"
RUNTIMES="${RUNTIMES:-berth runc crun}"
ONLY="${ONLY:-}" # a regexp of test names, to run a subset
work="$(mktemp -d /tmp/berth-rtt-XXXXXX)"
cleanup() {
	# Leave no container of any runtime behind, then the work dir.
	for c in "$work"/berth-runtime "$work"/runc "$work"/crun; do
		[ -x "$c" ] || continue
		for id in $("$c" list -q 2>/dev/null); do "$c" delete --force "$id" >/dev/null 2>&1 || true; done
	done
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$OUT"

# The built suite is kept (SUITE_CACHE) so that later runs skip the build.
SUITE_CACHE="${SUITE_CACHE:-/var/tmp/berth-runtime-tools-$RTT_VERSION}"

build_suite() {
	local dir src="$work/src"
	if [ -x "$SUITE_CACHE/runtimetest" ] && [ -x "$SUITE_CACHE/validation/state.t" ]; then
		cp -r "$SUITE_CACHE" "$src"
		return
	fi
	dir="$(cd "$work" && go mod download -json "github.com/opencontainers/runtime-tools@$RTT_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
	cp -r "$dir" "$src"
	chmod -R u+w "$src"
	cd "$src"
	if [ ! -f go.mod ]; then
		# Its Godeps.json pins commits the proxy does not serve; the latest
		# tags work, except for two that must be as old as the suite.
		go mod init github.com/opencontainers/runtime-tools >/dev/null 2>&1
		GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
		GOFLAGS=-mod=mod go get github.com/opencontainers/runtime-spec@v1.0.2 github.com/opencontainers/selinux@v1.8.0 >/dev/null 2>&1
	fi
	# runtimetest runs inside the suite's busybox rootfs: static.
	CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o runtimetest ./cmd/runtimetest
	for d in validation/*/; do
		name="$(basename "$d")"
		[ "$name" = util ] && continue
		GOFLAGS=-mod=mod go build -o "validation/$name.t" "./validation/$name" || echo "conformance: build of $name failed" >&2
	done
	rm -rf "$SUITE_CACHE" && cp -r "$src" "$SUITE_CACHE"
}

# run_suite NAME WRAPPER [PREFIX...]: runs every test with RUNTIME=WRAPPER.
run_suite() {
	local name="$1" wrapper="$2"
	shift 2
	local log="$OUT/$name"
	rm -rf "$log" && mkdir -p "$log"
	cd "$work/src"
	for t in validation/*.t; do
		local base
		base="$(basename "$t" .t)"
		if [ -n "$ONLY" ] && ! [[ "$base" =~ $ONLY ]]; then continue; fi
		RUNTIME="$wrapper" timeout "$TEST_TIMEOUT" "$@" "./$t" >"$log/$base.tap" 2>"$log/$base.err" || true
	done
	local pass fail skip
	pass=$(cat "$log"/*.tap | grep -E '^ok ' | grep -vc '# SKIP' || true)
	skip=$(cat "$log"/*.tap | grep -E '^ok .*# SKIP' -c || true)
	fail=$(cat "$log"/*.tap | grep -Ec '^not ok ' || true)
	echo "$name $pass $fail $skip" >>"$work/tally"
}

build_suite

cat >"$work/berth-runtime" <<EOF2
#!/bin/sh
exec "$berth" --run-root "$work/berth-run" runtime "\$@"
EOF2
chmod +x "$work/berth-runtime"
want() { [[ " $RUNTIMES " == *" $1 "* ]]; }
if want berth; then run_suite berth "$work/berth-runtime"; fi

if want runc && command -v runc >/dev/null; then
	cat >"$work/runc" <<EOF2
#!/bin/sh
exec runc --root "$work/runc-run" "\$@"
EOF2
	chmod +x "$work/runc"
	run_suite runc "$work/runc"
fi

if want crun && command -v crun >/dev/null; then
	# crun 1.8 refuses this machine's hybrid cgroup layout (the v2 mount
	# lists hugetlb): it only runs in a private mount namespace where that
	# mount is hidden.
	cat >"$work/crun" <<EOF2
#!/bin/sh
exec crun --root "$work/crun-run" "\$@"
EOF2
	chmod +x "$work/crun"
	if mountpoint -q /sys/fs/cgroup/unified; then
		run_suite crun "$work/crun" unshare -m --propagation private sh -c 'umount -l /sys/fs/cgroup/unified; exec "$0"'
	else
		run_suite crun "$work/crun"
	fi
fi

echo
printf '%-8s %8s %8s %8s\n' runtime passed failed skipped
while read -r n p f s; do printf '%-8s %8s %8s %8s\n' "$n" "$p" "$f" "$s"; done <"$work/tally"
echo "(TAP per test under $OUT/<runtime>/)"
