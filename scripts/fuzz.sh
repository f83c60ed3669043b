#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each (FUZZ_SECONDS, default 30) and fails if any
# finds a crash (the input is kept under fuzz/artifacts/<target>/).
#   scripts/fuzz.sh                 all targets
#   scripts/fuzz.sh dns http        only these
# Env: FUZZ_SECONDS (per target), FUZZ_SANITIZER (default none: the Rust code is memory-safe apart from the
# AF_PACKET ring, which is not fuzzed, and without ASan the fuzz build is several times faster; use
# FUZZ_SANITIZER=address to hunt memory errors).
# cargo-fuzz needs nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

cargo fuzz build -O -s "$sanitizer"
logs="target/fuzz-logs"
mkdir -p "$logs"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  if cargo fuzz run -O -s "$sanitizer" "$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 \
      >"$logs/$t.log" 2>&1; then
    echo "fuzz $t: ok, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$') runs in ${seconds}s"
  else
    failed+=("$t")
    echo "fuzz $t: CRASH (full log: fuzz/$logs/$t.log)"
    grep -E "panicked|SUMMARY|Test unit written|ERROR" "$logs/$t.log" | head -5 || true
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (inputs under fuzz/artifacts/<target>/)"
  exit 1
fi
echo "fuzz: no crash in ${targets[*]} (${seconds}s each)"
