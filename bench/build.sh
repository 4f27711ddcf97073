#!/bin/sh
# Times `berth build` on the issue's Dockerfile (FROM busybox, RUN, COPY of
# 200 files / 10 MB, ENV, CMD): cold (empty build cache), fully cached, and
# with one data file changed. Needs root (overlay mounts) and hyperfine.
#   usage: bench/build.sh [path/to/berth]
set -eu
BERTH=${1:-$(pwd)/bin/berth}
[ -x "$BERTH" ] || { echo "build berth first (make build) or pass its path" >&2; exit 1; }
W=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
R=$W/root
# keep the build bridge between builds as a real state root does (roots
# under $TMPDIR drop it after each build); removed again on exit
export BERTH_KEEP_BUILD_NETWORK=1
trap '"$BERTH" --root "$R" builder prune --all >/dev/null 2>&1; rm -rf "$W"' EXIT
mkdir -p "$W/rootfs/bin" "$W/ctx/data"
cp /bin/busybox "$W/rootfs/bin/"
for a in sh echo cat; do ln -s busybox "$W/rootfs/bin/$a"; done
"$BERTH" --root "$R" image import "$W/rootfs" busybox:bench >/dev/null
i=1
while [ $i -le 200 ]; do
	head -c 52428 /dev/urandom >"$W/ctx/data/f$i"
	i=$((i + 1))
done
cat >"$W/ctx/Dockerfile" <<'DF'
FROM busybox:bench
RUN echo hi > /hello
COPY data/ /data/
ENV A=1
CMD ["sh"]
DF
B="$BERTH --root $R build -q --context $W/ctx -t bench:build"
$B >/dev/null
hyperfine --warmup 1 --runs 10 --export-markdown "$W/cold.md" \
	--prepare "rm -rf $R/builder/cache" -n cold "$B"
hyperfine --warmup 2 --runs 20 -n cached "$B"
hyperfine --warmup 1 --runs 10 \
	--prepare "head -c 52428 /dev/urandom > $W/ctx/data/f7" -n one-file-changed "$B"
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	echo "docker build, for comparison (FROM busybox from the docker engine):"
	sed 's/busybox:bench/busybox/' "$W/ctx/Dockerfile" >"$W/ctx/Dockerfile.docker"
	D="docker build -q -f $W/ctx/Dockerfile.docker $W/ctx"
	hyperfine --warmup 1 --runs 10 -n docker-cached "$D"
fi
