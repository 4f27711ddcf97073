#!/usr/bin/env bash
# Brings the example up and prints what the probe found.
#   sudo ./run.sh          (then: sudo berth down)
set -euo pipefail
cd "$(dirname "$0")"
berth="${BERTH:-$(command -v berth || echo ../../bin/berth)}"
BERTH="$berth" ../../scripts/busybox-image.sh localhost/busybox:demo
"$berth" up -d
for _ in $(seq 1 50); do
	"$berth" logs --no-log-prefix probe 2>/dev/null | grep -q "probe done" && break
	sleep 0.2
done
"$berth" logs --no-log-prefix probe
