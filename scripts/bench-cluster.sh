#!/usr/bin/env bash
# Cluster benchmarks (issue 3 item 10): relay events/s beside NATS, HRW publish latency at a fixed rate, logger
# records/s, a manager with 256 workers and the time a join takes to settle. Figures and method:
# docs/BENCHMARKS.md ("Cluster").
#   scripts/bench-cluster.sh [cluster_bench args, e.g. --only relay --events 1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v nats-server >/dev/null 2>&1 || { echo "bench: nats-server not found (apt-get install nats-server)"; exit 1; }
cargo build --release -p zeek-node --example cluster_bench
exec target/release/examples/cluster_bench "$@"
