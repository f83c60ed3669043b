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
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$logs/rss" "$node" -r "$trace" --logdir "$logs" 2>"$logs/stderr"
  end=$(date +%s.%N)
  count=$(python3 -c "import sys,struct; f=open(sys.argv[1],'rb'); f.read(24); n=0
while (h:=f.read(16)): f.seek(struct.unpack('<I',h[8:12])[0],1); n+=1
print(n)" "$trace")
  weirds=$( [ -f "$logs/weird.log" ] && grep -v '^#' "$logs/weird.log" | cut -f7 | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}' || true)
  printf "%-24s %10d %12.0f %7.1f MiB  %s\n" "$case" "$count" "$(python3 -c "print($count / ($end - $start))")" \
    "$(python3 -c "print($(cat "$logs/rss") / 1024)")" "${weirds:--}"
done
