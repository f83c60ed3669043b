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

# Seeds for the packet targets: the first 64 KiB of frames of every oracle pcap, in the targets' input format
# (a link-type byte, then 2-byte big-endian length + frame for each packet; see fuzz_targets/frames.rs).
oracle="${ZEEK_ORACLE_DIR:-../../shared/oracle/dev}"
for t in decode engine; do
  [ -d "$oracle" ] && [ -z "$(ls -A "corpus/$t" 2>/dev/null)" ] || continue
  mkdir -p "corpus/$t"
  python3 - "$oracle" "corpus/$t" <<'PY'
import glob, os, struct, sys
oracle, out = sys.argv[1], sys.argv[2]
for path in glob.glob(os.path.join(oracle, '*', '*.pcap')):
    data = open(path, 'rb').read()
    if len(data) < 24 or data[:4] not in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        continue  # big-endian and pcapng traces are left out
    seed, off = bytearray([0]), 24  # 0: Ethernet (every oracle pcap is Ethernet)
    while off + 16 <= len(data) and len(seed) < 65536:
        caplen = struct.unpack_from('<I', data, off + 8)[0]
        frame = data[off + 16:off + 16 + caplen][:65535]
        seed += struct.pack('>H', len(frame)) + frame
        off += 16 + caplen
    with open(os.path.join(out, os.path.basename(os.path.dirname(path))), 'wb') as f:
        f.write(seed)
PY
done
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
