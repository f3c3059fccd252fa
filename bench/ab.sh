#!/usr/bin/env bash
# A/B of two jvirtio trees' vhost-user-blk backends with one client held fixed: the client is
# tree A's bin/bench; each round runs A's backend, then B's, at queue depth 1 and 32, 4 KiB random
# reads on the null device or a 256 MiB image in the page cache (backend pinned to CPU 1, client to
# CPU 0, CPU time from /proc as in bench/e2e.sh). Both trees must be built (bin/bench --help builds
# one). The client waits for interrupts; AB_CLIENT_FLAGS="--poll-us 5" makes it poll first.
# Usage: bench/ab.sh TREE_A TREE_B [rounds] [seconds] [null|file]
set -euo pipefail
a=$(cd "$1" && pwd); b=$(cd "$2" && pwd); rounds=${3:-5}; secs=${4:-4}; disk=${5:-null}
case "$disk" in null|file) ;; *) echo "usage: bench/ab.sh TREE_A TREE_B [rounds] [seconds] [null|file]" >&2; exit 2 ;; esac
work=$(mktemp -d); hz=$(getconf CLK_TCK)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
img=$work/disk.img
[ "$disk" = file ] && dd if=/dev/zero of="$img" bs=1M count=256 status=none
what=(--null 1G); [ "$disk" = file ] && what=(--image "$img")
read -r -a client <<<"${AB_CLIENT_FLAGS:-}"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
"$a/bin/bench" --help >/dev/null
printf '%-5s %-4s %-4s %5s %12s %12s\n' round tree disk depth IOPS cpu_us/req
for round in $(seq "$rounds"); do
  for tree in A B; do
    d=$a; [ $tree = B ] && d=$b
    for depth in 1 32; do
      sock=$work/$tree.sock; rm -f "$sock"
      [ "$disk" = file ] && cat "$img" >/dev/null
      taskset -c 1 "$d/bin/vhost-user-blk" --socket "$sock" "${what[@]}" >"$work/backend.log" 2>&1 &
      pid=$!
      for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
      taskset -c 0 "$a/bin/bench" --socket "$sock" --depth "$depth" --read-percent 100 --seconds "$secs" --warmup 2 --span 256M "${client[@]}" >"$work/bench.out" &
      c=$!; sleep 2.5; t0=$(cpu_ticks "$pid"); wait "$c"; t1=$(cpu_ticks "$pid")
      kill "$pid"; wait "$pid" 2>/dev/null || true
      iops=$(sed -n 's/.*reads: \([0-9,]*\) IOPS.*/\1/p' "$work/bench.out" | tr -d ,)
      reqs=$(sed -n 's/.*(\([0-9,]*\) requests.*/\1/p' "$work/bench.out" | tr -d ,)
      cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$reqs" 'BEGIN { printf "%.2f", d / hz * 1e6 / r }')
      printf '%-5s %-4s %-4s %5s %12s %12s\n' "$round" "$tree" "$disk" "$depth" "$iops" "$cpu"
    done
  done
done
