#!/usr/bin/env bash
# The project-level figures of issue 6, on a 50-service project (busybox,
# `sleep 3600`):
#   1. `up -d` from nothing        (target < 1.5 s; compose on Docker: 7.3 s)
#   2. no-op `up -d`               (target < 20 ms; compose: 92 ms)
#   3. one service recreated, -t 0 (target < 100 ms; compose: 0.44 s)
#   4. `down -t 0`                 (target < 0.8 s; compose: 4.0 s)
# Each is the median of RUNS runs (default 5; hyperfine for the no-op).
# When `docker compose` and a Docker engine answer, the same project is
# timed with them too and printed alongside.
# Needs root. Uses its own state roots, so it never touches other projects:
#   BERTH=bin/berth N=50 RUNS=5 bench/up.sh
# RUN_BASE (default /run) holds the run root: most machines have /run on a
# tmpfs; where it is a disk file system (this development machine: ext4),
# RUN_BASE=<a tmpfs mount> shows what the same binary does on such a machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
berth="$(realpath "${BERTH:-bin/berth}")"
n="${N:-50}"
runs="${RUNS:-5}"
[ "$(id -u)" -eq 0 ] || { echo "bench/up.sh: needs root" >&2; exit 1; }
[ -x "$berth" ] || ./scripts/build.sh "$berth"

work=$(mktemp -d /tmp/berth-bench-up.XXXXXX)
export BERTH_ROOT="$work/root" BERTH_RUN_ROOT="${RUN_BASE:-/run}/$(basename "$work")"
proj="$work/proj"
mkdir -p "$proj"
cleanup() {
	(cd "$proj" && "$berth" down -v -t 0 >/dev/null 2>&1) || true
	if [ -n "${docker_ok:-}" ]; then (cd "$proj" && docker compose down -v -t 0 >/dev/null 2>&1) || true; fi
	rm -rf "$work" "$BERTH_RUN_ROOT"
}
trap cleanup EXIT

BERTH="$berth" ./scripts/busybox-image.sh localhost/busybox:bench >/dev/null

# write_project IMAGE MARK: 50 services; MARK changes svc1 only.
write_project() {
	local i
	{
		echo "name: benchup"
		echo "services:"
		for i in $(seq 1 "$n"); do
			echo "  svc$i:"
			echo "    image: $1"
			echo "    pull_policy: never"
			echo "    command: [\"sleep\", \"3600\"]"
			if [ "$i" -eq 1 ]; then
				echo "    environment: {MARK: \"$2\"}"
			fi
		done
	} >"$proj/docker-compose.yml"
}

now() { date +%s%N; }
# run CMD...: the command's output goes to the log; a failure is reported
# with the end of it (under set -e, one failing up used to end the script
# without a word, or with the figures of the runs before it missing).
run() {
	if ! "$@" >>"$work/log" 2>&1; then
		echo "bench/up.sh: failed: $*" >&2
		tail -20 "$work/log" >&2
		exit 1 # measure runs in a subshell: it ends, and the read after it fails
	fi
}
# median of the numbers (ns) on stdin, printed in ms with one decimal.
median_ms() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.1f", m/1e6}'; }

# measure TOOL: prints "up noop recreate down" medians in ms; TOOL is a
# command prefix ("$berth" or "docker compose").
measure() {
	local tool="$1" ups="" recs="" downs="" noop t0 i
	cd "$proj"
	for i in $(seq 1 "$runs"); do
		write_project "$image" a
		t0=$(now); run $tool up -d; ups+="$(($(now) - t0))"$'\n'
		if [ "$i" -eq 1 ]; then
			if command -v hyperfine >/dev/null; then
				run hyperfine -N -w 3 -r 30 --export-json "$work/noop.json" "$tool up -d"
				noop=$(jq -r '.results[0].median * 1000 | . * 10 | round / 10' "$work/noop.json")
			else
				noop=$(for _ in $(seq 1 20); do t0=$(now); run $tool up -d; echo $(($(now) - t0)); done | median_ms)
			fi
		fi
		write_project "$image" "b$i"
		t0=$(now); run $tool up -d -t 0; recs+="$(($(now) - t0))"$'\n'
		t0=$(now); run $tool down -t 0; downs+="$(($(now) - t0))"$'\n'
	done
	cd - >/dev/null
	echo "$(printf %s "$ups" | median_ms) $noop $(printf %s "$recs" | median_ms) $(printf %s "$downs" | median_ms)"
}

# The figures move with the machine's load: print it with them.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
echo "== $n services (busybox sleep 3600), median of $runs runs, ms; load average $(loadavg)"
image=localhost/busybox:bench
read -r bu bn br bd < <(measure "$berth") || { echo "bench/up.sh: measuring $berth failed" >&2; exit 1; }
docker_ok=""
if command -v docker >/dev/null && docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	docker_ok=1
fi
if [ -n "$docker_ok" ]; then
	image=busybox:latest
	docker pull -q "$image" >/dev/null
	read -r du dn dr dd < <(measure "docker compose") || { echo "bench/up.sh: measuring docker compose failed" >&2; exit 1; }
else
	du=- dn=- dr=- dd=-
	echo "(no docker compose with a Docker engine here: berth's figures only)"
fi
printf '%-28s %10s %10s %10s\n' "" berth target "docker compose"
printf '%-28s %10s %10s %10s\n' "up -d from nothing" "$bu" 1500 "$du"
printf '%-28s %10s %10s %10s\n' "no-op up -d" "$bn" 20 "$dn"
printf '%-28s %10s %10s %10s\n' "one service recreated -t 0" "$br" 100 "$dr"
printf '%-28s %10s %10s %10s\n' "down -t 0" "$bd" 800 "$dd"
echo "load average at the end: $(loadavg)"
