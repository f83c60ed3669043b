#!/usr/bin/env bash
# Throughput benchmark (issue 2 item 8): generates the benchmark mix once (cached in target/bench, never
# committed), then runs the release-build bench binary: one thread, all analyzers, median of BENCH_RUNS runs
# (default 5), and ndpiReader on the same trace for the ratio. Figures and method: docs/BENCHMARKS.md.
#   scripts/bench.sh [extra bench args, e.g. --ndpi-runs 1]
#   scripts/bench.sh cluster [args]   the cluster benchmarks instead (scripts/bench-cluster.sh)
#   scripts/bench.sh scan [args]      the same bench over a SYN scan (scripts/gen_scan.py): memory per connection
#                                     when most connections never carry a byte
#   scripts/bench.sh mirror [vxlan|gre] [args]   the mix's first 300,000 packets as a traffic mirror delivers them
#                                     (scripts/gen_mirror.py): the cost of decapsulating every packet
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = cluster ]; then shift; exec scripts/bench-cluster.sh "$@"; fi
export PATH="$HOME/.cargo/bin:$PATH"
mix="target/bench/mix.pcap"
shared="${ZEEK_SHARED_DIR:-../shared}"
generate_mix() {
  [ -s "$mix" ] && return
  mkdir -p target/bench
  echo "bench: generating $mix (gen_mix.py defaults, seed 20251120)"
  python3 "$shared/tools/gen_mix.py" "$mix.tmp"
  mv "$mix.tmp" "$mix"
}
if [ "${1:-}" = scan ]; then
  shift
  mix="target/bench/scan.pcap"
  [ -s "$mix" ] || { mkdir -p target/bench; python3 scripts/gen_scan.py "$mix"; }
elif [ "${1:-}" = mirror ]; then
  shift
  encap=vxlan
  case "${1:-}" in vxlan|gre) encap=$1; shift ;; esac
  mirrored="target/bench/mirror-$encap.pcap"
  if [ ! -s "$mirrored" ]; then
    generate_mix
    python3 scripts/gen_mirror.py "$mix" "$mirrored.tmp" --encap "$encap"
    mv "$mirrored.tmp" "$mirrored"
  fi
  mix="$mirrored"
else
  generate_mix
fi
command -v ndpiReader >/dev/null 2>&1 || echo "bench: ndpiReader not found (apt-get install libndpi-bin); no ratio"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
# BENCH_BINARY: another build of the bench to run (scripts/pgo.sh passes its profile-guided one).
bench="${BENCH_BINARY:-target/release/examples/bench}"
[ -n "${BENCH_BINARY:-}" ] || cargo build --release -p zeek-node --example bench
exec "$bench" "$mix" --runs "${BENCH_RUNS:-5}" "$@"
