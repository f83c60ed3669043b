#!/usr/bin/env bash
# The main job: analyse the bundled trace with a cluster-in-a-box (manager, logger, proxies and workers as
# separate processes on 127.0.0.1), and print where the logs are. Usage: scripts/demo.sh [PCAP] [LOGDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
trace="${1:-examples/traces/demo.pcap}"
logdir="${2:-demo-logs}"
cargo build --release -p zeek-node
bin=target/release/zeek-node
rm -rf "$logdir"
if "$bin" cluster --help >/dev/null 2>&1; then
  "$bin" cluster --workers 2 --proxies 2 --loggers 1 -r "$trace" --logdir "$logdir"
else
  echo "demo: this build has no cluster mode yet; analysing standalone"
  "$bin" -r "$trace" --logdir "$logdir"
fi
echo
echo "logs written to $(cd "$logdir" && pwd):"
ls -l "$logdir"
