#!/usr/bin/env bash
# Polling bench: jvirtio's vhost-user-blk null disk with its defaults against the same backend with
# other flags (by default --poll-credit-ns 0, the adaptive window alone, as before the polling
# credit), interleaved, in four loads: 4 KiB random reads at depth 32 and depth 1 (back to back),
# depth 1 with 300 us of "think time" before each new request (a lightly loaded queue, where
# polling can only cost), and two queues at depth 16 on the one I/O thread. Backend on CPU 1,
# client (bin/bench, waiting on the call eventfd like a guest) on CPU 0. Prints each run (IOPS,
# backend CPU us per request from /proc/PID/stat over the measured seconds), then the medians.
# Usage: bench/polling.sh [rounds] [seconds]      POLLING_OTHER="flags" sets the other backend's flags
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
secs=${2:-5}
case "$rounds$secs" in *[!0-9]*) echo "usage: bench/polling.sh [rounds] [seconds]" >&2; exit 2 ;; esac
read -r -a other <<<"${POLLING_OTHER:---poll-credit-ns 0}"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$root/bin/bench" --help >/dev/null          # builds the jars once, outside the measurement
"$root/bin/vhost-user-blk" --help >/dev/null # and the start-up cache
hz=$(getconf CLK_TCK)
warmup=4

one() { # config load -> prints "config load iops cpu_us_per_request"
  local sock=$work/b.sock pid bench t0 t1 iops reqs flags=() args=()
  [ "$1" = other ] && flags=("${other[@]}")
  case "$2" in
    d32) args=(--depth 32) ;;
    d1) args=(--depth 1) ;;
    d1-think300) args=(--depth 1 --think-us 300) ;;
    2q-d16) args=(--queues 2 --depth 16); flags+=(--queues 2) ;;
  esac
  rm -f "$sock"
  taskset -c 1 "$root/bin/vhost-user-blk" --socket "$sock" --null 1G "${flags[@]}" >"$work/backend.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || { echo "backend did not start: $(cat "$work/backend.log")" >&2; exit 1; }
  taskset -c 0 "$root/bin/bench" --socket "$sock" "${args[@]}" --seconds "$secs" --warmup "$warmup" --span 256M >"$work/bench.out" 2>&1 &
  bench=$!
  sleep "$warmup.6"   # the client's JVM start (~0.5 s) and the warm-up
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  wait "$bench" || { echo "bench failed: $(cat "$work/bench.out")" >&2; exit 1; }
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  iops=$(sed -n 's/.*reads: \([0-9,]*\) IOPS.*/\1/p' "$work/bench.out" | tr -d ,)
  reqs=$(sed -n 's/.*(\([0-9,]*\) requests.*/\1/p' "$work/bench.out" | tr -d ,)
  printf '%-8s %-12s %10s %8s\n' "$1" "$2" "$iops" "$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$reqs" 'BEGIN { printf "%.2f", d / hz * 1e6 / r }')"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "other: ${other[*]}"
printf '%-8s %-12s %10s %8s\n' config load IOPS cpu_us
for _ in $(seq "$rounds"); do
  for load in d32 d1 d1-think300 2q-d16; do
    for config in default other; do
      one "$config" "$load" | tee -a "$work/runs"
    done
  done
done
echo
echo "medians of $rounds rounds:"
printf '%-8s %-12s %10s %8s\n' config load IOPS cpu_us
for load in d32 d1 d1-think300 2q-d16; do
  for config in default other; do
    runs=$(awk -v c="$config" -v l="$load" '$1 == c && $2 == l' "$work/runs")
    printf '%-8s %-12s %10s %8s\n' "$config" "$load" "$(awk '{print $3}' <<<"$runs" | median)" "$(awk '{print $4}' <<<"$runs" | median)"
  done
done
