#!/usr/bin/env bash
# Runs every Fuzz* target of the module briefly ($1: a -fuzztime, default
# 300x). A count rather than a duration: Go 1.26's time-limited fuzzing can
# end with a spurious "context deadline exceeded" (golang/go#75804).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
t="${1:-300x}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -hoE '^func Fuzz[A-Za-z0-9_]+' "$dir"/*_test.go 2>/dev/null | awk '{print $2}'); do
		echo "fuzz: $pkg $f ($t)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
	done
done
