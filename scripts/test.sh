#!/usr/bin/env bash
# The whole test suite: unit tests everywhere, root tests when root, and a
# short fuzz run of every fuzz target.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
go vet ./...
./scripts/build.sh
# Root tests share the machine's networking and cgroups: one package at a time.
go test -p 1 -count=1 -timeout 25m ./...
./scripts/fuzz.sh "${FUZZTIME:-300x}"
