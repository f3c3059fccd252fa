#!/usr/bin/env bash
# End-to-end bench: the same Java front-end (bin/bench) drives jvirtio's vhost-user-blk backend
# and qemu-storage-daemon's, null device, a raw file in the page cache (ext4 or whatever holds
# $TMPDIR) and the same file on tmpfs (/dev/shm, as a memory-backed emptyDir), 4 KiB random reads
# and writes at queue depth 1 and 32. Backend pinned to CPU 1, client to CPU 0. Prints IOPS,
# latency and backend CPU time per request (from /proc/PID/stat, utime + stime, sampled after the
# warm-up and at the end, so JVM start-up and JIT warm-up are not counted).
# jvirtio runs with its defaults (adaptive polling up to 32 us, like qsd's poll-max-ns default);
# qsd's file backend is run with aio=threads (its default) and aio=io_uring.
# Usage: bench/e2e.sh [seconds] [null|file|tmpfs|all]    (needs qemu-storage-daemon: package qemu-system-common)
# E2E_JVIRTIO_VARIANT="flags" adds rows "jvirtio_var": jvirtio run with those backend flags too, in
# the same run (e.g. E2E_JVIRTIO_VARIANT="--poll-credit-ns 0" for the polling before the credit).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${1:-10}
disks=${2:-all}
[ "$disks" = all ] && disks="null file tmpfs"
work=$(mktemp -d)
shm=$(mktemp -d /dev/shm/e2e.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work" "$shm"' EXIT
img=$work/disk.img
dd if=/dev/zero of="$img" bs=1M count=256 status=none
dd if=/dev/zero of="$shm/disk.img" bs=1M count=256 status=none
"$root/bin/bench" --help >/dev/null   # builds the jar once, outside the measurement
hz=$(getconf CLK_TCK)
. "$root/bench/lib/listening.sh"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_backend() { # kind disk -> sets pid, sock
  sock=$work/$1-$2.sock
  rm -f "$sock"
  local img=$img
  [ "$2" = tmpfs ] && img=$shm/disk.img
  local extra=()
  [ "$1" = jvirtio_var ] && read -r -a extra <<<"$E2E_JVIRTIO_VARIANT"
  case "${1/jvirtio_var/jvirtio}-${2/tmpfs/file}" in
    jvirtio-null) taskset -c 1 "$root/bin/vhost-user-blk" --socket "$sock" --null 1G "${extra[@]}" >"$work/backend.log" 2>&1 & ;;
    jvirtio-file) taskset -c 1 "$root/bin/vhost-user-blk" --socket "$sock" --image "$img" "${extra[@]}" >"$work/backend.log" 2>&1 & ;;
    qsd-null) taskset -c 1 qemu-storage-daemon --blockdev driver=null-co,node-name=d0,size=1073741824,read-zeroes=on \
      --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path="$sock",writable=on >"$work/backend.log" 2>&1 & ;;
    qsd-file) taskset -c 1 qemu-storage-daemon --blockdev driver=file,node-name=d0,filename="$img",cache.direct=off \
      --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path="$sock",writable=on >"$work/backend.log" 2>&1 & ;;
    qsd_uring-file) taskset -c 1 qemu-storage-daemon --blockdev driver=file,node-name=d0,filename="$img",cache.direct=off,aio=io_uring \
      --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path="$sock",writable=on >"$work/backend.log" 2>&1 & ;;
  esac
  pid=$!
  await_listening "$sock" "$pid" && return
  echo "backend $1-$2 did not start: $(cat "$work/backend.log")" >&2; exit 1
}

printf '%-19s %-6s %5s %12s %10s %10s %12s\n' backend rw depth IOPS p50_us p99.9_us cpu_us/req
for disk in $disks; do
  kinds="jvirtio qsd"
  [ "$disk" != null ] && kinds="jvirtio qsd qsd_uring"
  [ -n "${E2E_JVIRTIO_VARIANT:-}" ] && kinds="jvirtio jvirtio_var ${kinds#jvirtio }"
  for kind in $kinds; do
    for rw in read write; do
      for depth in 1 32; do
        # The image back in the page cache first: this machine's kernel (DAMON) evicts pages idle
        # for a minute or so, and the null rows run before the file rows.
        [ "$disk" = file ] && cat "$img" >/dev/null
        start_backend "$kind" "$disk"
        pct=$([ "$rw" = read ] && echo 100 || echo 0)
        taskset -c 0 "$root/bin/bench" --socket "$sock" --depth "$depth" --read-percent "$pct" --seconds "$secs" --warmup 3 --span 256M >"$work/bench.out" &
        bench=$!
        sleep 3.5   # JVM start of the client (~0.5 s) + warm-up
        t0=$(cpu_ticks "$pid")
        wait "$bench"
        t1=$(cpu_ticks "$pid")
        out=$(cat "$work/bench.out")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        iops=$(sed -n 's/.*reads: \([0-9,]*\) IOPS.*/\1/p' <<<"$out" | tr -d ,)
        reqs=$(sed -n 's/.*(\([0-9,]*\) requests.*/\1/p' <<<"$out" | tr -d ,)
        p50=$(sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p' <<<"$out")
        p999=$(sed -n 's/.*p99.9 \([0-9.]*\) us.*/\1/p' <<<"$out")
        # CPU over (about) the measured window, divided by the measured requests
        cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$reqs" 'BEGIN { printf "%.2f", d / hz * 1e6 / r }')
        printf '%-19s %-6s %5s %12s %10s %10s %12s\n' "$kind-$disk" "$rw" "$depth" "$iops" "$p50" "$p999" "$cpu"
      done
    done
  done
done
