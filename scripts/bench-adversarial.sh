#!/usr/bin/env bash
# zeek-node over each worst-case trace of scripts/gen_adversarial.py: packets per second (wall clock of the whole
# process, reading included) and peak resident memory, with the weirds each case raised. A case far below the
# benchmark mix's rate, or whose memory grows with the trace, is work that grows faster than the traffic.
#
#   scripts/bench-adversarial.sh [ZEEK_NODE] [PACKETS]     # default: the release build, 100000 packets a case
set -euo pipefail
cd "$(dirname "$0")/.."
node=${1:-target/release/zeek-node}
packets=${2:-100000}
[ -x "$node" ] || cargo build --release -p zeek-node --bin zeek-node
dir=target/bench/adversarial
mkdir -p "$dir"
printf '%-24s %10s %12s %10s  %s\n' case packets packets/s "peak RSS" weirds
for case in $(python3 scripts/gen_adversarial.py --list | awk '{print $1}'); do
  trace="$dir/$case.pcap"
  [ -s "$trace" ] || python3 scripts/gen_adversarial.py "$case" "$trace" --packets "$packets"
  logs="$dir/$case.logs"
  rm -rf "$logs" && mkdir -p "$logs"
  # Wall clock and peak RSS of the run, measured by Python (no dependency on GNU time): "seconds kib".
  read -r seconds kib < <(python3 -c "import resource, subprocess, sys, time
start = time.monotonic()
with open(sys.argv[1], 'w') as err:
    subprocess.run(sys.argv[2:], stderr=err, check=True)
print(time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)" \
    "$logs/stderr" "$node" -r "$trace" --logdir "$logs")
  count=$(python3 -c "import sys,struct; f=open(sys.argv[1],'rb'); f.read(24); n=0
while (h:=f.read(16)): f.seek(struct.unpack('<I',h[8:12])[0],1); n+=1
print(n)" "$trace")
  weirds=$( [ -f "$logs/weird.log" ] && grep -v '^#' "$logs/weird.log" | cut -f7 | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}' || true)
  printf "%-24s %10d %12.0f %7.1f MiB  %s\n" "$case" "$count" "$(python3 -c "print($count / $seconds)")" \
    "$(python3 -c "print($kib / 1024)")" "${weirds:--}"
done
