#!/usr/bin/env bash
# RBD bench: jvirtio's `blk --rbd` and qemu-storage-daemon's `driver=rbd,cache.direct=on`, both as
# vhost-user-blk exports of the same image on the same throw-away single-node cluster
# (bin/ceph-cluster: one mon, one memstore OSD), driven by the same Java front-end (bin/bench,
# waiting on the call eventfd as a guest does), rounds interleaved (jvirtio, qsd, jvirtio, ...).
# Rows: 4 KiB random read at depth 1 and 32, random write at depth 32.
# Per row and backend: IOPS, p50, backend CPU per request split into the backend's own threads and
# librbd/librados' threads (by thread name: msgr-worker, io_context_pool, safe_timer, ...), and the
# OSD's CPU per request. Medians over the rounds, then per row the median over the rounds of
# jvirtio's IOPS and own CPU over qsd's in the same round. Each backend is started once per round
# and warmed up for WARMUP seconds (default 20) of mixed load before its three rows are measured;
# each row's front-end connects anew and runs RAMP seconds (default 3) before its measured
# seconds, which are left out of the row (requests and CPU alike): a new connection's first
# requests take paths the JIT had not compiled (docs/PERFORMANCE.md, "RBD: the JIT after a
# reconnect").
# RBD_JVIRTIO_VARIANT="flags" adds rows "jvirtio_var": jvirtio with those flags too, in the same rounds
# (e.g. RBD_JVIRTIO_VARIANT="--ceph-options rbd_non_blocking_aio=false"); RBD_JVIRTIO_VARIANT_JAVA="options"
# gives that variant JVM options instead or as well (JVIRTIO_JAVA_OPTS, e.g. "-XX:CompileThresholdScaling=1").
# THREADS=1 prints, for every row, each backend thread group's CPU per request (names with their
# digits dropped: "jvirtio-io-", "C2 CompilerThread", "msgr-worker-", ...) to stderr.
# Usage: bench/rbd.sh [rounds] [seconds]     (needs ceph-mon ceph-osd ceph-common librbd1 qemu-block-extra)
# Backend pinned to CPU 1 with its librbd threads, bench client and the cluster to CPU 0.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
secs=${2:-10}
ramp=${RAMP:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; "$root/bin/ceph-cluster" stop "$work/ceph" >/dev/null 2>&1 || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)
. "$root/bench/lib/listening.sh"

"$root/bin/bench" --help >/dev/null   # builds the jars once, outside the measurement
"$root/bin/vhost-user" --help >/dev/null 2>&1 || true
CEPH_MEMSTORE_BYTES=$((2 << 30)) taskset -c 0 "$root/bin/ceph-cluster" start "$work/ceph" >/dev/null
conf=$work/ceph/ceph.conf
rbd -c "$conf" create --size 256M rbd/bench
rbd -c "$conf" bench --io-type write --io-pattern seq --io-size 4M --io-total 256M rbd/bench >/dev/null 2>&1
osd=$(cat "$work/ceph/osd.0.pid")

ceph_threads='^(safe_timer|io_context_pool|taskfin_librbd|service|msgr-worker-[0-9]+|ms_local|ms_dispatch|log|ceph_timer|admin_socket|fn_anonymous|fn-radosclient|signal_handler|finisher|tp_librbd|ms_.*)$'
# "own librbd" -> prints "OWN LIB" CPU ticks of pid
ticks() {  # own = the process's CPU (ended threads included) minus librbd/librados' threads
  local lib=0 t name v total
  total=$(awk '{print $14 + $15}' "/proc/$1/stat")
  for t in /proc/"$1"/task/*; do
    name=$(cat "$t/comm" 2>/dev/null) || continue
    v=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null) || continue
    if [[ $name =~ $ceph_threads ]]; then lib=$((lib + v)); fi
  done
  echo "$((total - lib)) $lib"
}
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
thread_ticks() {  # pid -> "group ticks" lines, threads grouped by name without digits
  local t name
  for t in /proc/"$1"/task/*; do
    name=$(tr -d '0-9' <"$t/comm" 2>/dev/null | tr ' ' '_') || continue
    awk -v n="$name" '{print n, $14 + $15}' "$t/stat" 2>/dev/null || true
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}

start_backend() { # kind -> pid, sock
  sock=$work/$1.sock
  rm -f "$sock"
  case $1 in
    jvirtio) taskset -c 1 "$root/bin/vhost-user" blk --socket "$sock" --rbd rbd/bench --ceph-conf "$conf" >"$work/backend.log" 2>&1 & ;;
    jvirtio_var) read -r -a extra <<<"${RBD_JVIRTIO_VARIANT:-}"
      JVIRTIO_JAVA_OPTS="${RBD_JVIRTIO_VARIANT_JAVA:-}" taskset -c 1 "$root/bin/vhost-user" blk --socket "$sock" --rbd rbd/bench --ceph-conf "$conf" "${extra[@]}" >"$work/backend.log" 2>&1 & ;;
    qsd) taskset -c 1 qemu-storage-daemon \
      --blockdev "driver=rbd,node-name=d0,pool=rbd,image=bench,conf=$conf,user=admin,cache.direct=on" \
      --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path="$sock",writable=on >"$work/backend.log" 2>&1 & ;;
  esac
  pid=$!
  await_listening "$sock" "$pid" && return
  echo "backend $1 did not start: $(cat "$work/backend.log")" >&2; exit 1
}

kinds="jvirtio qsd"
[ -n "${RBD_JVIRTIO_VARIANT:-}${RBD_JVIRTIO_VARIANT_JAVA:-}" ] && kinds="jvirtio jvirtio_var qsd"
results=$work/results
: >"$results"
for round in $(seq 1 "$rounds"); do
  for kind in $kinds; do
    start_backend "$kind"
    # Warm-up outside the measurement: the JVM's JIT needs tens of seconds of load before jvirtio
    # runs at its steady cost (a backend serves a VM for days); qsd gets the same.
    taskset -c 0 "$root/bin/bench" --socket "$sock" --depth 32 --read-percent 50 --seconds "${WARMUP:-20}" --warmup 0 --span 256M >/dev/null
    for row in "read 1" "read 32" "write 32"; do
      set -- $row
      rw=$1 depth=$2
      pct=$([ "$rw" = read ] && echo 100 || echo 0)
      # The row's first RAMP seconds on its connection are not measured (neither the requests nor
      # the CPU): the counters are read when the front-end says its measured seconds begin, and
      # again when it says they end (before it collects its last requests and disconnects).
      rm -f "$work/mark"
      taskset -c 0 "$root/bin/bench" --socket "$sock" --depth "$depth" --read-percent "$pct" --seconds "$secs" --warmup "$ramp" \
        --mark-file "$work/mark" --span 256M >"$work/bench.out" &
      bench=$!
      while [ ! -e "$work/mark" ] && kill -0 "$bench" 2>/dev/null; do sleep 0.01; done
      read -r o0 l0 <<<"$(ticks "$pid")"
      [ -n "${THREADS:-}" ] && thread_ticks "$pid" >"$work/threads0"
      s0=$(proc_ticks "$osd")
      while [ "$(grep -c . "$work/mark" 2>/dev/null)" -lt 2 ] && kill -0 "$bench" 2>/dev/null; do sleep 0.01; done
      read -r o1 l1 <<<"$(ticks "$pid")"
      s1=$(proc_ticks "$osd")
      [ -n "${THREADS:-}" ] && thread_ticks "$pid" >"$work/threads1"
      wait "$bench"
      out=$(cat "$work/bench.out")
      iops=$(sed -n 's/.*reads: \([0-9,]*\) IOPS.*/\1/p' <<<"$out" | head -1 | tr -d ,)
      reqs=$(sed -n 's/.*(\([0-9,]*\) requests.*/\1/p' <<<"$out" | tr -d ,)
      p50=$(sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p' <<<"$out")
      awk -v k="$kind" -v rw="$rw" -v d="$depth" -v i="$iops" -v p="$p50" -v r="$reqs" -v hz="$hz" \
          -v own=$((o1 - o0)) -v lib=$((l1 - l0)) -v osd=$((s1 - s0)) \
        -v round="$round" 'BEGIN { printf "%s %s %s %s %s %.1f %.1f %.1f %d\n", k, rw, d, i, p, own / hz * 1e6 / r, lib / hz * 1e6 / r, osd / hz * 1e6 / r, round }' >>"$results"
      echo "round $round: $(tail -1 "$results")" >&2
      if [ -n "${THREADS:-}" ]; then
        join -a 2 -e 0 -o 0,1.2,2.2 "$work/threads0" "$work/threads1" |
          awk -v r="$reqs" -v hz="$hz" '$3 - $2 > 0 { printf "    %-22s %8.1f us/req\n", $1, ($3 - $2) / hz * 1e6 / r }' | sort -k2 -n -r >&2
      fi
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done

printf '%-11s %-6s %5s %10s %9s %12s %12s %12s %12s\n' backend rw depth IOPS p50_us own_us/req librbd_us/req total_us/req osd_us/req
for row in "read 1" "read 32" "write 32"; do
  set -- $row
  for kind in $kinds; do
    awk -v k="$kind" -v rw="$1" -v d="$2" '$1 == k && $2 == rw && $3 == d' "$results" | sort -k4 -n | awk '
      { i[NR] = $4; p[NR] = $5; o[NR] = $6; l[NR] = $7; s[NR] = $8; t[NR] = $6 + $7 }
      function med(a, n,   b, j, k, x) { for (j = 1; j <= n; j++) b[j] = a[j]; for (j = 1; j <= n; j++) for (k = j + 1; k <= n; k++) if (b[k] < b[j]) { x = b[j]; b[j] = b[k]; b[k] = x }; return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }
      END { printf "%-11s %-6s %5s %10d %9.1f %12.1f %12.1f %12.1f %12.1f\n", k, rw, d, med(i, NR), med(p, NR), med(o, NR), med(l, NR), med(t, NR), med(s, NR) }' k="$kind" rw="$1" d="$2"
  done
done

# The machine's speed swings within a run, so the steadier figure is each round's jvirtio row over
# the qsd row measured a minute later: the median of those ratios, and in how many rounds jvirtio
# had the higher IOPS and the lower own CPU.
echo
printf '%-8s %5s %22s %24s\n' rw depth "IOPS jvirtio/qsd" "own CPU jvirtio/qsd"
for row in "read 1" "read 32" "write 32"; do
  set -- $row
  awk -v rw="$1" -v d="$2" '
    $2 == rw && $3 == d && ($1 == "jvirtio" || $1 == "qsd") { v[$1, $9, "i"] = $4; v[$1, $9, "o"] = $6; if ($9 > max) max = $9 }
    function med(a, n,   b, j, k, x) { for (j = 1; j <= n; j++) b[j] = a[j]; for (j = 1; j <= n; j++) for (k = j + 1; k <= n; k++) if (b[k] < b[j]) { x = b[j]; b[j] = b[k]; b[k] = x }; return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }
    END {
      for (r = 1; r <= max; r++) if ((("jvirtio", r, "i") in v) && (("qsd", r, "i") in v) && v["qsd", r, "i"] > 0 && v["qsd", r, "o"] > 0) {
        n++; ri[n] = v["jvirtio", r, "i"] / v["qsd", r, "i"]; ro[n] = v["jvirtio", r, "o"] / v["qsd", r, "o"]
        if (ri[n] >= 1) up++; if (ro[n] < 1) down++
      }
      if (n) printf "%-8s %5s %14.2fx (%d of %d) %16.2fx (%d of %d)\n", rw, d, med(ri, n), up, n, med(ro, n), down, n
    }' "$results"
done
