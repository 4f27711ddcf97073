#!/usr/bin/env bash
# Brings up the demo project (the root docker-compose.yml).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
go build -o bin/berth ./cmd/berth
exec ./bin/berth up -d "$@"
