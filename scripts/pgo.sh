#!/usr/bin/env bash
# Profile-guided build of zeek-node: an instrumented build analyses a training trace, then zeek-node (and the
# bench binary) are built again with that profile. On the benchmark mix this takes ~10% of the instructions and
# ~11% of the CPU time of `zeek-node -r` off the release build (docs/BENCHMARKS.md, "Profile-guided build"). Train on
# traffic like the traffic you will analyse; the default is a mix from gen_mix.py with another seed than the
# benchmark's (other addresses, times and order), so the benchmark does not measure its own training run.
#   scripts/pgo.sh [TRACE]            binaries in target/pgo/release/ (zeek-node, examples/bench)
#   scripts/pgo.sh bench [bench args] the same, then the benchmark of scripts/bench.sh with the PGO bench binary
# Needs the rustup component llvm-tools (installed here) for llvm-profdata; uses two more target directories
# (target/pgo-gen for the instrumented build, target/pgo for the result).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
run_bench=0
if [ "${1:-}" = bench ]; then run_bench=1; shift; fi
trace="target/bench/train.pcap"
if [ "$run_bench" = 0 ] && [ -n "${1:-}" ]; then trace="$1"; fi
shared="${ZEEK_SHARED_DIR:-../shared}"
if [ ! -s "$trace" ]; then
  mkdir -p "$(dirname "$trace")"
  echo "pgo: generating $trace (gen_mix.py, seed 7, 500k packets)"
  python3 "$shared/tools/gen_mix.py" --seed 7 --packets 500000 "$trace.tmp"
  mv "$trace.tmp" "$trace"
fi

rustup component add llvm-tools >/dev/null 2>&1
host="$(rustc -vV | sed -n 's/^host: //p')"
profdata_tool="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
raw="$PWD/target/pgo-gen/profiles"
profile="$PWD/target/pgo/zeek-node.profdata"

# Both builds take the same targets, so every crate is compiled the same way and the profile matches it.
targets=(-p zeek-node --bin zeek-node --example bench)
echo "pgo: instrumented build (target/pgo-gen)"
RUSTFLAGS="-Cprofile-generate=$raw" cargo build --release --locked "${targets[@]}" --target-dir target/pgo-gen
rm -rf "$raw" # build scripts ran instrumented too; only the training run counts
# Trained through the bench binary: the engine and the record formatting alone, the path every packet takes. A
# profile trained through `zeek-node -r` (reader, writer threads and files too) gained 9% on the bench where this
# one gains 24%, and this one takes 11% off `zeek-node -r` itself (docs/BENCHMARKS.md).
echo "pgo: training on $trace"
target/pgo-gen/release/examples/bench "$trace" --runs 1 --ndpi-runs 0 --no-memory
mkdir -p target/pgo
"$profdata_tool" merge -o "$profile" "$raw"

echo "pgo: optimized build (target/pgo)"
RUSTFLAGS="-Cprofile-use=$profile" cargo build --release --locked "${targets[@]}" --target-dir target/pgo
echo "pgo: target/pgo/release/zeek-node and target/pgo/release/examples/bench"

if [ "$run_bench" = 1 ]; then
  BENCH_BINARY=target/pgo/release/examples/bench exec scripts/bench.sh "$@"
fi
