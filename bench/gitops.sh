#!/usr/bin/env bash
# Issue 10's figures for berth sync (root): push to a loopback HTTP
# repository (git http-backend) + a signed webhook delivery -> the changed
# container running, against the reconciler's own pass; then the idle
# controller's resident memory.
#   sudo bench/gitops.sh [ROUNDS]     (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH_BENCH=1 BERTH_BENCH_ROUNDS="${1:-10}" go test -count=1 -run '^TestSyncLatencyBench$' -v ./gitops |
	grep -E '^bench |^(--- )?(PASS|FAIL|ok)|panic|Error'
