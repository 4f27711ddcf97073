#!/usr/bin/env bash
# Networking benchmarks (issue 5). Prints:
#   1. BenchmarkAttach vs BenchmarkAttachNone: what joining a bridge network
#      (sandbox + veth + addresses + routes + DNS record + files) costs per
#      container, against a container with network_mode none.
#   2. BenchmarkThroughput: 64 MB TCP transfers from the host to a container
#      of a dual-stack network, directly (IPv4 and IPv6), through its
#      published port on 127.0.0.1 and on the IPv4 gateway (nftables), on
#      the IPv6 gateway (nftables) and on ::1 (the userland proxy); ratios
#      published/direct from direct-published-published-direct sequences, medians.
# Needs root; runs in throwaway network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
n="${N:-200}"
count="${COUNT:-3}"
echo "== 1. attach cost per container (go test -bench 'Attach' -benchtime ${n}x -count $count ./network/)"
go test -run '^$' -bench 'Attach' -benchtime "${n}x" -count "$count" ./network/ | grep -E '^Benchmark'
echo "== 2. throughput, published port vs direct, paths interleaved, medians (go test -bench Throughput -benchtime 15x -count $count ./network/)"
go test -run '^$' -bench Throughput -benchtime 15x -count "$count" ./network/ | grep -E '^Benchmark'
