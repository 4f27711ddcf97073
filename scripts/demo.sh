#!/usr/bin/env bash
# Brings up the demo project (the root docker-compose.yml) on a fresh Debian
# machine: installs what berth needs, builds bin/berth, imports a busybox
# image (no registry needed), builds the services from demo/*/Dockerfile and
# runs `berth up -d --build`, then prints the URL.
#   sudo ./scripts/demo.sh        (extra arguments go to `berth up`)
# Take it down with: sudo ./bin/berth down -v
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: berth runs containers and needs root: sudo $0" >&2
	exit 1
fi
./scripts/install-deps.sh
./scripts/build.sh
BERTH=./bin/berth ./scripts/busybox-image.sh localhost/busybox:demo
./bin/berth up -d --build "$@"
url=http://127.0.0.1:8080/
# web starts once the API is healthy; wait for the page before pointing at it.
for _ in $(seq 1 50); do
	if timeout 5 busybox wget -q -O /dev/null "$url" 2>/dev/null; then
		break
	fi
	sleep 0.2
done
echo
echo "berth demo is up: open $url"
echo "  ./bin/berth ps          # its containers"
echo "  ./bin/berth logs -f     # their logs"
echo "  ./bin/berth down -v     # take it down"
