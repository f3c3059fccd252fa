#!/usr/bin/env bash
# The cost of inflight tracking end to end: this tree's bin/vhost-user-blk --null 1G driven by
# bin/bench with and without --inflight (the client sets up the region as QEMU does), alternating,
# depth 1 and 32, backend on CPU 1 and client on CPU 0, CPU time from /proc as in bench/ab.sh.
# Usage: bench/inflight.sh [rounds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3}; secs=4; hz=$(getconf CLK_TCK); work=$(mktemp -d)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
printf '%-5s %-9s %5s %12s %12s\n' round inflight depth IOPS cpu_us/req
for round in $(seq "$rounds"); do
  for mode in off on; do
    for depth in 1 32; do
      sock=$work/s.sock; rm -f "$sock"
      taskset -c 1 bin/vhost-user-blk --socket "$sock" --null 1G >"$work/backend.log" 2>&1 &
      pid=$!
      for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
      flag=""; [ $mode = on ] && flag="--inflight"
      taskset -c 0 bin/bench --socket "$sock" --depth "$depth" --read-percent 100 --seconds "$secs" --warmup 2 --span 256M $flag >"$work/bench.out" &
      c=$!; sleep 2.5; t0=$(cpu_ticks "$pid"); wait "$c"; t1=$(cpu_ticks "$pid")
      kill "$pid"; wait "$pid" 2>/dev/null || true
      iops=$(sed -n 's/.*reads: \([0-9,]*\) IOPS.*/\1/p' "$work/bench.out" | tr -d ,)
      [ -n "$iops" ] || iops=$(sed -n 's/.*: \([0-9,]*\) IOPS.*/\1/p' "$work/bench.out" | tr -d ,)
      reqs=$(sed -n 's/.*(\([0-9,]*\) requests.*/\1/p' "$work/bench.out" | tr -d ,)
      cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$reqs" 'BEGIN { printf "%.2f", d / hz * 1e6 / r }')
      printf '%-5s %-9s %5s %12s %12s\n' "$round" "$mode" "$depth" "$iops" "$cpu"
    done
  done
done
rm -rf "$work"
