#!/usr/bin/env bash
# Footprint bench (issue 13): what one backend per VM costs. For jvirtio's vhost-user-blk
# (bin/vhost-user-blk, its defaults) and qemu-storage-daemon in the same run, backend pinned to
# CPU 1:
#   - exec to listening socket, median (and min, max) of N starts (the jar already built);
#   - resident memory (VmRSS) and threads when idle, 2 s after the socket appears;
#   - VmRSS and threads after S seconds of 4 KiB random reads at queue depth 32 on one queue
#     (bin/bench, pinned to CPU 0), and the IOPS it saw.
# Disks: the null device (1 GiB) and a 256 MiB image in the page cache.
# Then FOOTPRINT_MANY (default 5) idle backends of each kind at once (null disk): the proportional
# set size (Pss: each shared page counted once across them) and private memory per backend, i.e.
# what one more VM's backend costs on a host that runs many (libjvm.so and the start-up cache's
# clean pages are shared by every jvirtio backend, as qemu's libraries are by every qsd).
# Then one process serving FOOTPRINT_SHARED (default 10) disks (see the end of this script).
# Usage: bench/footprint.sh [starts] [seconds] [null|file|all]
#   (needs qemu-storage-daemon: package qemu-system-common; JVIRTIO_JAVA_OPTS is passed through;
#   FOOTPRINT_JVIRTIO=path/to/a/vhost-user-blk launcher measures another build, e.g. an older one)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
starts=${1:-10}
secs=${2:-10}
disks=${3:-all}
[ "$disks" = all ] && disks="null file"
case "$starts$secs" in *[!0-9]*) echo "usage: bench/footprint.sh [starts] [seconds] [null|file|all]" >&2; exit 2 ;; esac
command -v qemu-storage-daemon >/dev/null || { echo "footprint: qemu-storage-daemon not found (apt-get install qemu-system-common)" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
img=$work/disk.img
dd if=/dev/zero of="$img" bs=1M count=256 status=none
"$root/bin/bench" --help >/dev/null         # builds the jars once, outside the measurement
launcher=${FOOTPRINT_JVIRTIO:-$root/bin/vhost-user-blk}
"$launcher" --help >/dev/null               # and the start-up cache, once

now_ns() { date +%s%N; }
taskset -pc 0 $$ >/dev/null    # this script (polling for the socket) and the client on CPU 0, backends on CPU 1
exec {never}<> <(:)            # a pipe nobody writes: read -t on it sleeps

start_backend() { # kind disk -> sets pid, sock, ms (exec to socket)
  sock=$work/$1.sock
  rm -f "$sock"
  local t0
  t0=$(now_ns)
  case "$1-$2" in
    jvirtio-null) taskset -c 1 "$launcher" --socket "$sock" --null 1G >"$work/backend.log" 2>&1 & ;;
    jvirtio-file) taskset -c 1 "$launcher" --socket "$sock" --image "$img" >"$work/backend.log" 2>&1 & ;;
    qsd-null) taskset -c 1 qemu-storage-daemon --blockdev driver=null-co,node-name=d0,size=1073741824,read-zeroes=on \
      --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path="$sock",writable=on >"$work/backend.log" 2>&1 & ;;
    qsd-file) taskset -c 1 qemu-storage-daemon --blockdev driver=file,node-name=d0,filename="$img",cache.direct=off,aio=io_uring \
      --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path="$sock",writable=on >"$work/backend.log" 2>&1 & ;;
  esac
  pid=$!
  local limit=$((SECONDS + 30))
  until [ -S "$sock" ]; do
    read -r -t 0.001 -u "$never" || true   # a 1 ms nap without a fork
    if [ $SECONDS -gt $limit ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "footprint: backend $1-$2 did not start: $(cat "$work/backend.log")" >&2
      exit 1
    fi
  done
  ms=$(( ($(now_ns) - t0) / 1000000 ))
}

stop_backend() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

printf '%-8s %-5s %9s %9s %9s %11s %8s %11s %8s %10s\n' backend disk start_ms min_ms max_ms idle_rss_MB threads load_rss_MB threads IOPS
for disk in $disks; do
  for kind in jvirtio qsd; do
    times=()
    for _ in $(seq "$starts"); do
      start_backend "$kind" "$disk"
      times+=("$ms")
      stop_backend
    done
    med=$(printf '%s\n' "${times[@]}" | median)
    min=$(printf '%s\n' "${times[@]}" | sort -n | head -n 1)
    max=$(printf '%s\n' "${times[@]}" | sort -n | tail -n 1)
    start_backend "$kind" "$disk"
    sleep 2
    idle_rss=$(status_kb "$pid" VmRSS)
    idle_thr=$(status_kb "$pid" Threads)
    taskset -c 0 "$root/bin/bench" --socket "$sock" --depth 32 --read-percent 100 --seconds "$secs" --warmup 1 --span 256M >"$work/bench.out" 2>&1 &
    bench=$!
    # sampled just before the load ends: the peak working set, not what is left after it
    sleep $((secs + 1))
    load_rss=$(status_kb "$pid" VmRSS)
    load_thr=$(status_kb "$pid" Threads)
    wait "$bench" || { echo "footprint: bench failed: $(cat "$work/bench.out")" >&2; exit 1; }
    iops=$(sed -n 's/.*reads: \([0-9,]*\) IOPS.*/\1/p' "$work/bench.out" | tr -d ,)
    stop_backend
    printf '%-8s %-5s %9s %9s %9s %11.1f %8s %11.1f %8s %10s\n' "$kind" "$disk" "$med" "$min" "$max" \
      "$(awk -v k="$idle_rss" 'BEGIN {print k / 1024}')" "$idle_thr" "$(awk -v k="$load_rss" 'BEGIN {print k / 1024}')" "$load_thr" "${iops:-?}"
  done
done

many=${FOOTPRINT_MANY:-5}
if [ "$many" -gt 0 ]; then
  printf '\n%-8s %5s %14s %14s %14s\n' backend count rss_MB_each pss_MB_each private_MB_each
  for kind in jvirtio qsd; do
    pids=()
    for i in $(seq "$many"); do
      s=$work/many-$kind-$i.sock
      if [ "$kind" = jvirtio ]; then
        "$launcher" --socket "$s" --null 1G >"$work/many-$i.log" 2>&1 &
      else
        qemu-storage-daemon --blockdev driver=null-co,node-name=d0,size=1073741824,read-zeroes=on \
          --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path="$s",writable=on >"$work/many-$i.log" 2>&1 &
      fi
      pids+=($!)
    done
    for i in $(seq "$many"); do
      until [ -S "$work/many-$kind-$i.sock" ]; do read -r -t 0.01 -u "$never" || true; done
    done
    sleep 3
    for p in "${pids[@]}"; do
      awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_Clean:/{pc=$2} /^Private_Dirty:/{pd=$2} END {print r, p, pc + pd}' "/proc/$p/smaps_rollup"
    done | awk -v k="$kind" '{r += $1; p += $2; u += $3} END {printf "%-8s %5d %14.1f %14.1f %14.1f\n", k, NR, r / NR / 1024, p / NR / 1024, u / NR / 1024}'
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  done
fi

# One process serving FOOTPRINT_SHARED (default 10) null disks, each on its own socket, as a host
# that puts its VMs' disks in one backend process would (jvirtio: bin/vhost-user blk ... + blk ...;
# qemu-storage-daemon: one --blockdev and --export per disk): resident memory of the process, per
# disk, idle and after S seconds of the depth-32 read load on each disk in turn; threads idle and
# after the load.
shared=${FOOTPRINT_SHARED:-10}
if [ "$shared" -gt 0 ]; then
  printf '\n%-8s %5s %14s %14s %8s %16s %14s %14s\n' backend disks idle_rss_MB idle_MB_each threads loaded_MB_each loaded_rss_MB loaded_threads
  for kind in jvirtio qsd; do
    args=()
    for i in $(seq "$shared"); do
      s=$work/shared-$kind-$i.sock
      if [ "$kind" = jvirtio ]; then
        [ "$i" -gt 1 ] && args+=(+)
        args+=(blk --socket "$s" --null 1G)
      else
        args+=(--blockdev "driver=null-co,node-name=d$i,size=1073741824,read-zeroes=on"
          --export "type=vhost-user-blk,id=e$i,node-name=d$i,addr.type=unix,addr.path=$s,writable=on")
      fi
    done
    if [ "$kind" = jvirtio ]; then
      taskset -c 1 "$root/bin/vhost-user" "${args[@]}" >"$work/shared.log" 2>&1 &
    else
      taskset -c 1 qemu-storage-daemon "${args[@]}" >"$work/shared.log" 2>&1 &
    fi
    spid=$!
    for i in $(seq "$shared"); do
      until [ -S "$work/shared-$kind-$i.sock" ]; do
        read -r -t 0.01 -u "$never" || true
        kill -0 "$spid" 2>/dev/null || { echo "footprint: shared $kind did not start: $(cat "$work/shared.log")" >&2; exit 1; }
      done
    done
    sleep 3
    idle=$(status_kb "$spid" VmRSS)
    thr=$(status_kb "$spid" Threads)
    for i in $(seq "$shared"); do
      taskset -c 0 "$root/bin/bench" --socket "$work/shared-$kind-$i.sock" --depth 32 --read-percent 100 --seconds "$secs" --warmup 0 \
        --span 256M >"$work/bench.out" 2>&1 || { echo "footprint: bench failed: $(cat "$work/bench.out")" >&2; exit 1; }
    done
    loaded=$(status_kb "$spid" VmRSS)
    lthr=$(status_kb "$spid" Threads)
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    awk -v k="$kind" -v n="$shared" -v i="$idle" -v t="$thr" -v l="$loaded" -v lt="$lthr" \
      'BEGIN {printf "%-8s %5d %14.1f %14.1f %8d %16.1f %14.1f %14d\n", k, n, i / 1024, i / n / 1024, t, l / n / 1024, l / 1024, lt}'
  done
fi
