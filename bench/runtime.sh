#!/usr/bin/env bash
# Benchmarks of the runtime, side by side with runc and crun (Debian's):
#  1. create + start + wait for exit (+ delete) of /bin/true in a busybox
#     bundle: `berth runtime run`, `runc run`, `crun run`, and unshare +
#     chroot as the floor. hyperfine prints the medians.
#  2. the memory supervision adds: RSS of berth's processes (the monitor)
#     divided by the containers, with 20 `sleep` containers running.
#
#   bench/runtime.sh [berth-binary]     (root)
#
# crun 1.8 only runs here in a private mount namespace with the cgroup v2
# mount hidden, so every runtime is timed inside such a namespace (the same
# for all, set up once, outside the timed commands).
set -euo pipefail
berth="$(readlink -f "${1:-$(dirname "$0")/../bin/berth}")"
RUNS="${RUNS:-200}"
# State roots on /run, where runtimes keep them (a tmpfs on most machines;
# ext4 on this one).
work="$(mktemp -d /run/berth-bench-XXXXXX)"
cleanup() {
	for id in $("$berth" --run-root "$work/run" runtime list -q 2>/dev/null); do
		"$berth" --run-root "$work/run" runtime delete --force "$id" >/dev/null 2>&1 || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" "$bundle/rootfs/tmp"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$bundle/rootfs/bin/$a"; done
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"), indent=1)
PY

echo "== create + start + wait + delete of /bin/true ($RUNS runs each)"
inner="$work/inner.sh"
cat >"$inner" <<EOF2
set -e
if mountpoint -q /sys/fs/cgroup/unified; then umount -l /sys/fs/cgroup/unified; fi
cd "$bundle"
hyperfine -N --warmup 10 --runs $RUNS --export-markdown "$work/run.md" --export-json "$work/run.json" \\
	-n 'unshare+chroot' 'unshare -fmpiu chroot $bundle/rootfs /bin/true' \\
	-n berth '$berth --run-root $work/run runtime run b' \\
	-n runc 'runc --root $work/runc run b' \\
	-n crun 'crun --root $work/crun run b'
# CPU of the whole machine per run (/proc/stat, all CPUs), 100 runs back
# to back: a runtime that leaves work behind (berth's next spare init)
# pays for it here, where the loop may be bound by the two CPUs.
cpu() { awk '/^cpu /{print \$2+\$3+\$4+\$6+\$7+\$8}' /proc/stat; }
for rt in berth crun; do
	if [ \$rt = berth ]; then cmd="$berth --run-root $work/run runtime run b"; else cmd="crun --root $work/crun run b"; fi
	c0=\$(cpu); t0=\$(date +%s%N)
	for i in \$(seq 100); do \$cmd; done
	c1=\$(cpu); t1=\$(date +%s%N)
	hz=\$(getconf CLK_TCK)
	echo "\$rt" \$(( (c1 - c0) * 1000000 / hz / 100 )) \$(( (t1 - t0) / 100000 )) >>"$work/cpu.txt"
done
EOF2
unshare -m --propagation private bash "$inner"
cat "$work/run.md"
python3 - "$work/run.json" <<'PY'
import json, sys
print("\nmedians:")
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"  {r['command']:16s} {r['median']*1000:7.1f} ms")
PY
echo
echo "== CPU per run, 100 runs back to back (all CPUs, /proc/stat)"
awk '{printf "  %-16s cpu %5.1f ms   wall %5.1f ms\n", $1, $2 / 1000, $3 / 1000}' "$work/cpu.txt"

echo
echo "== supervision memory: 20 sleep containers"
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/sleep", "600"]
json.dump(c, open(p, "w"), indent=1)
PY
cd "$bundle"
for i in $(seq 1 20); do "$berth" --run-root "$work/run" runtime run -d "s$i" </dev/null >/dev/null 2>&1; done
sleep 1
rss_kib=0
pids=""
for p in /proc/[0-9]*; do
	[ -r "$p/environ" ] || continue
	env="$( (tr '\0' '\n' <"$p/environ") 2>/dev/null | grep -c "^_BERTH_MONITOR_ROOT=$work/run/runtime$" || true)"
	if [ "$env" = 1 ]; then
		r="$(awk '/^VmRSS:/ {print $2}' "$p/status")"
		rss_kib=$((rss_kib + r))
		pids="$pids ${p#/proc/}"
	fi
done
running="$("$berth" --run-root "$work/run" runtime list | grep -c running || true)"
echo "berth processes supervising:$pids"
echo "running containers: $running"
echo "total RSS of berth processes: ${rss_kib} KiB"
echo "per container: $((rss_kib / 20)) KiB ($(python3 -c "print(round($rss_kib/20/1024, 2))") MiB)"
