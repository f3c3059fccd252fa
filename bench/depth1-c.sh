#!/usr/bin/env bash
# Depth-1 image reads with a front-end in C (bench/vu-blk-client.c, no jvirtio code): jvirtio's
# `blk --image` (defaults) and qemu-storage-daemon (aio=io_uring, cache.direct=off) serving the
# same 256 MiB image, on ext4 (read into the page cache first) and on /dev/shm, rounds interleaved
# (jvirtio, qsd, jvirtio, ...). The client waits for the interrupt on the call eventfd as a guest
# does ("irq"), or spins on used->idx ("poll"). Backend on CPU 1, client on CPU 0; backend CPU
# from /proc/PID/stat over the measured seconds. Prints every run, then medians and, per round,
# jvirtio's IOPS per backend CPU-second over qsd's.
# DEPTH1_SLEEPING=1 adds a third backend, "jv-sleep": jvirtio with polling off (--poll-us 0
# --poll-credit-ns 0), its I/O thread asleep in epoll_wait between requests.
# DEPTH1_VARIANT_JAVA="..." adds "jv-var": jvirtio with these JVM options added
# (JVIRTIO_JAVA_OPTS), e.g. -Djvirtio.inline_reads=off for the commit before inline page-cache reads.
# Usage: bench/depth1-c.sh [rounds] [seconds]      (needs cc, qemu-storage-daemon)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
secs=${2:-5}
case "$rounds$secs" in *[!0-9]*) echo "usage: bench/depth1-c.sh [rounds] [seconds]" >&2; exit 2 ;; esac
work=$(mktemp -d "${DEPTH1_DISK_DIR:-/var/tmp}/depth1.XXXXXX")   # the "ext4" image lives here
shm=$(mktemp -d /dev/shm/depth1.XXXXXX)
echo "image directories: $(df --output=fstype "$work" | tail -1) ($work), $(df --output=fstype "$shm" | tail -1) ($shm)" >&2
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work" "$shm"' EXIT
hz=$(getconf CLK_TCK)
. "$root/bench/lib/listening.sh"
cc -O2 -o "$work/client" "$root/bench/vu-blk-client.c"
"$root/bin/vhost-user" --help >/dev/null 2>&1 || true   # builds the jars once, outside the measurement
for fs in ext4 tmpfs; do
  img=$([ $fs = ext4 ] && echo "$work/disk.img" || echo "$shm/disk.img")
  head -c $((256 << 20)) /dev/urandom >"$img"
  cat "$img" >/dev/null   # in the page cache
done
results=$work/results
: >"$results"

one() { # backend fs mode round
  local sock=$work/b.sock img pid t0 t1 out iops reqs p50 mode=()
  img=$([ "$2" = ext4 ] && echo "$work/disk.img" || echo "$shm/disk.img")
  [ "$3" = poll ] && mode=(--poll)
  rm -f "$sock"
  case $1 in
    jvirtio) taskset -c 1 "$root/bin/vhost-user" blk --socket "$sock" --image "$img" >"$work/backend.log" 2>&1 & ;;
    jv-sleep) taskset -c 1 "$root/bin/vhost-user" blk --socket "$sock" --image "$img" --poll-us 0 --poll-credit-ns 0 >"$work/backend.log" 2>&1 & ;;
    jv-var) JVIRTIO_JAVA_OPTS="${JVIRTIO_JAVA_OPTS:-} $DEPTH1_VARIANT_JAVA" taskset -c 1 "$root/bin/vhost-user" blk --socket "$sock" \
      --image "$img" >"$work/backend.log" 2>&1 & ;;
    qsd) taskset -c 1 qemu-storage-daemon \
      --blockdev "driver=file,node-name=f,filename=$img,aio=io_uring,cache.direct=off" \
      --export type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path="$sock",writable=on >"$work/backend.log" 2>&1 & ;;
  esac
  pid=$!
  await_listening "$sock" "$pid" || { cat "$work/backend.log" >&2; exit 1; }
  taskset -c 0 "$work/client" "$sock" --seconds 3 --warmup 0 "${mode[@]}" >/dev/null   # warm-up (the JIT)
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(taskset -c 0 "$work/client" "$sock" --seconds "$secs" --warmup 0 "${mode[@]}")
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  iops=$(sed -n 's/reads: \([0-9]*\) IOPS.*/\1/p' <<<"$out")
  p50=$(sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p' <<<"$out")
  reqs=$(sed -n 's/.*(\([0-9]*\) requests).*/\1/p' <<<"$out")
  awk -v b="$1" -v f="$2" -v m="$3" -v r="$4" -v i="$iops" -v p="$p50" -v n="$reqs" -v c=$((t1 - t0)) -v hz="$hz" \
    'BEGIN { cpu = c / hz; printf "%s %s %s %s %s %s %.2f %.0f\n", b, f, m, r, i, p, cpu * 1e6 / n, n / (cpu > 0 ? cpu : 1e-9) }' >>"$results"
  echo "$(tail -1 "$results")" >&2
}

for round in $(seq 1 "$rounds"); do
  for fs in ext4 tmpfs; do
    for mode in irq poll; do
      one jvirtio $fs $mode "$round"
      [ "${DEPTH1_SLEEPING:-0}" = 1 ] && one jv-sleep $fs $mode "$round"
      [ -n "${DEPTH1_VARIANT_JAVA:-}" ] && one jv-var $fs $mode "$round"
      one qsd $fs $mode "$round"
    done
  done
done

echo "backend fs mode round IOPS p50_us cpu_us/req IOPS_per_cpu_s" >&2
printf '%-8s %-6s %-5s %10s %8s %11s %16s   %s\n' backend fs mode IOPS p50_us cpu_us/req IOPS/cpu-s "jvirtio/qsd IOPS per CPU-s, per round"
for fs in ext4 tmpfs; do
  for mode in irq poll; do
    for b in jvirtio $([ "${DEPTH1_SLEEPING:-0}" = 1 ] && echo jv-sleep) $([ -n "${DEPTH1_VARIANT_JAVA:-}" ] && echo jv-var) qsd; do
      awk -v b=$b -v f=$fs -v m=$mode '$1 == b && $2 == f && $3 == m' "$results" | awk '
        function med(a, n,   x, j, k, t) { for (j = 1; j <= n; j++) x[j] = a[j]; for (j = 1; j <= n; j++) for (k = j + 1; k <= n; k++) if (x[k] < x[j]) { t = x[j]; x[j] = x[k]; x[k] = t }; return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }
        { i[NR] = $5; p[NR] = $6; c[NR] = $7; e[NR] = $8 }
        END { printf "%-8s %-6s %-5s %10d %8.1f %11.2f %16d", b, f, m, med(i, NR), med(p, NR), med(c, NR), med(e, NR) }' b=$b f=$fs m=$mode
      if [ $b = qsd ]; then
        printf '   %s' "$(awk -v f=$fs -v m=$mode '$2 == f && $3 == m { e[$1 " " $4] = $8; r[$4] = 1 }
          END { for (k in r) printf "%.2f ", e["jvirtio " k] / e["qsd " k]; if (e["jv-sleep " 1] != "") { printf "| jv-sleep/qsd "; for (k in r) printf "%.2f ", e["jv-sleep " k] / e["qsd " k] }
            if (e["jv-var " 1] != "") { printf "| jv-var/qsd "; for (k in r) printf "%.2f ", e["jv-var " k] / e["qsd " k] } }' "$results")"
      fi
      echo
    done
  done
done
