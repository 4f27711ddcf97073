#!/usr/bin/env bash
# Layer store benchmarks (issue 3). Prints:
#   1. unpacking a ~100 MB, 5,000-file gzip layer: store.Unpack vs tar -xzf
#   2. pulling a 4-layer image from a loopback registry: berth pull vs
#      skopeo copy into an OCI layout
#   3. importing the same root filesystem twice: store size after each
# Needs root (unpack keeps owners), docker-registry, skopeo, umoci, hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
runs="${RUNS:-3}"
work=$(mktemp -d /tmp/berth-bench-store.XXXXXX)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
./scripts/build.sh "$work/berth"
berth="$work/berth"

echo "== 1. unpack 100 MB / 5,000 files (go test -bench UnpackLayer)"
go test -run '^$' -bench UnpackLayer -benchtime "${runs}x" ./store/ | grep -E '^Benchmark'

echo "== 2. pull vs skopeo copy (loopback registry)"
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/reg"
cat >"$work/reg/config.yml" <<CFG
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/reg/data
http:
  addr: 127.0.0.1:$port
CFG
docker-registry serve "$work/reg/config.yml" >/dev/null 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
# A 4-layer image: busybox, then three layers of 8 MB of incompressible data.
layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:1"
umoci unpack --image "$layout:1" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/"
umoci repack --image "$layout:1" "$work/bundle"
for i in 1 2 3; do
	head -c 8M /dev/urandom >"$work/bundle/rootfs/data$i"
	umoci repack --image "$layout:1" "$work/bundle"
done
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$layout:1" "docker://127.0.0.1:$port/bench/img:1"
hyperfine -w 1 -r "$runs" -N \
	--prepare "rm -rf $work/root $work/oci" \
	"$berth --root $work/root pull -q 127.0.0.1:$port/bench/img:1" \
	"skopeo --insecure-policy copy -q --src-tls-verify=false docker://127.0.0.1:$port/bench/img:1 oci:$work/oci:1"

echo "== 3. import the same rootfs twice"
rm -rf "$work/root"
"$berth" --root "$work/root" image import "$work/bundle/rootfs" bench:a
a=$(du -sb "$work/root/store/blobs" | cut -f1)
"$berth" --root "$work/root" image import "$work/bundle/rootfs" bench:b
b=$(du -sb "$work/root/store/blobs" | cut -f1)
"$berth" --root "$work/root" image ls
echo "blobs after first import: $a bytes; after second: $b bytes"
