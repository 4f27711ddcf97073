#!/usr/bin/env bash
# Runs a start-first rolling update under load and counts failed requests:
#   sudo ./run.sh          (then: sudo berth down)
# Brings web up at version 1, starts a client loop on 127.0.0.1:8090
# (bounded: 5000 requests or 60 s), updates to version 2 with berth up -d,
# and prints "N requests, F failed". Exits 1 if any request failed.
set -euo pipefail
cd "$(dirname "$0")"
berth="${BERTH:-$(command -v berth || echo ../../bin/berth)}"
url=http://127.0.0.1:8090/
BERTH="$berth" ../../scripts/busybox-image.sh localhost/busybox:demo
VERSION=1 "$berth" up -d --wait

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

get() {
	if command -v curl >/dev/null; then
		curl -fsS --max-time 2 "$url"
	else
		timeout 2 busybox wget -q -O - "$url"
	fi
}

# client sends requests one after another until told to stop, and records
# each answer (or FAILED) in a line of $tmp/answers.
client() {
	local n=0 end=$((SECONDS + 60))
	while [ $n -lt 5000 ] && [ $SECONDS -lt $end ] && [ ! -e "$tmp/stop" ]; do
		if body=$(get 2>/dev/null); then
			echo "$body" >>"$tmp/answers"
		else
			echo FAILED >>"$tmp/answers"
		fi
		n=$((n + 1))
	done
}

client &
pid=$!
sleep 1
echo "--- updating web to version 2 under load"
VERSION=2 "$berth" up -d
sleep 1
touch "$tmp/stop"
wait "$pid"

total=$(wc -l <"$tmp/answers")
failed=$(grep -c '^FAILED$' "$tmp/answers" || true)
echo "--- answers by version"
grep -v '^FAILED$' "$tmp/answers" | cut -d' ' -f1,2 | sort | uniq -c || true
"$berth" ps
echo "$total requests, $failed failed"
[ "$failed" -eq 0 ]
