#!/usr/bin/env bash
# The main job: analyse the bundled trace with a cluster-in-a-box (a manager, a logger, two proxies and two
# workers as separate processes on 127.0.0.1, talking gRPC over mTLS), running the detections zeekctl's default
# local.zeek loads (as a ZeekCluster does by default: the proxies hold the known hosts, services and software), and
# print where the logs are.
# Usage: scripts/demo.sh [PCAP] [LOGDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
trace="${1:-examples/traces/demo.pcap}"
logdir="${2:-demo-logs}"
cargo build --release -p zeek-node
rm -rf "$logdir"
target/release/zeek-node cluster --workers 2 --proxies 2 --loggers 1 --detect local -r "$trace" --logdir "$logdir"
echo
echo "logs written to $(cd "$logdir" && pwd):"
ls -l "$logdir"
