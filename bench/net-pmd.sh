#!/usr/bin/env bash
# Packet rate through a two-port switch, DPDK's testpmd as the front-end (two net_virtio_user
# ports, io forwarding, one forwarding core on CPU 1): frames loop port 0 -> switch -> port 1 -> switch
# -> port 0. The backends, alternating round by round, on CPU 0: jvirtio (bin/vhost-user net +
# net on one switch, the JVM pinned with taskset) and DPDK's own vhost PMD (testpmd with two
# net_vhost ports, io forwarding, its forwarding core on CPU 0).
# Prints per round: backend, frame size, packets/s per direction (median of testpmd's 5 s
# samples after the first) and packets per backend CPU-second.
# BACKENDS="jvirtio jvirtio_ab dpdk" with JVIRTIO_AB=DIR (another checkout, e.g. a git worktree of an
# earlier commit) adds that build to the same rounds, for an A/B of a change.
# VUSER_OPTS="packed_vq=1,mrg_rxbuf=0" adds devargs to the front-end's two net_virtio_user ports
# (packed rings; mergeable receive buffers off; both backends negotiate what the front-end offers).
# FRONT_OPTS="--burst=128" adds options to the front-end testpmd (here: 128 frames per burst, so
# --tx-first puts 128 per port in flight instead of 32).
# WARMUP=S runs the front-end S + 2 seconds longer and adds a steady-state figure: packets per
# backend CPU-second over a window from S seconds in to a second before the run's planned end (the
# JVM's JIT compiles on the backend's one CPU in the first seconds; DPDK has no warm-up), from
# testpmd's 1 s statistics and /proc at the window's ends (the 2 s extra make sure a statistics
# line comes after the window: without them a late start left none, and the figure read 0).
# Without it (the default) the figures are over the whole run, as before.
# Usage: bench/net-pmd.sh [rounds] [seconds per round] [frame sizes...]
# Needs: apt-get install dpdk dpdk-dev. Runs as root (testpmd's --no-huge memory, /var/run/dpdk).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
secs=${2:-20}
shift $(( $# > 2 ? 2 : $# )) || true
sizes=("${@:-64 1500}")
[ ${#sizes[@]} -eq 1 ] && read -r -a sizes <<< "${sizes[0]}"
dir=$(mktemp -d /tmp/jvirtio-pmd.XXXXXX)
trap 'pkill -f "file-prefix=jvb" 2>/dev/null || true; pkill -f "VhostUserRunner net --socket $dir" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)
. "$root/bench/lib/listening.sh"

backend_jvirtio() {
  taskset -c 0 "$root/bin/vhost-user" net --socket "$dir/a.sock" --switch pmd --allow-unsealed-memory --mtu 9000 \
      + net --socket "$dir/b.sock" --switch pmd --allow-unsealed-memory --mtu 9000 > "$dir/backend.log" 2>&1 &
  echo $!
}
backend_jvirtio_ab() {   # JVIRTIO_AB=DIR: the same, from another checkout (a git worktree), for A/B in the same rounds
  taskset -c 0 "$JVIRTIO_AB/bin/vhost-user" net --socket "$dir/a.sock" --switch pmd --allow-unsealed-memory --mtu 9000 \
      + net --socket "$dir/b.sock" --switch pmd --allow-unsealed-memory --mtu 9000 > "$dir/backend.log" 2>&1 &
  echo $!
}
backend_dpdk() {
  dpdk-testpmd --no-huge -m 512 --no-pci -l 0,1 --main-lcore 1 --file-prefix=jvb \
      --vdev "net_vhost0,iface=$dir/a.sock,queues=1" --vdev "net_vhost1,iface=$dir/b.sock,queues=1" \
      -- --forward-mode=io --nb-cores=1 --total-num-mbufs=16384 < "$dir/b.fifo" > "$dir/backend.log" 2>&1 &
  echo $!
}

await_gone() { # a testpmd of this file prefix still exiting holds its lock in /var/run/dpdk: the next one would fail
  for _ in $(seq 150); do pgrep -f "file-prefix=$1" > /dev/null || return 0; sleep 0.2; done
  echo "net-pmd: a testpmd with --file-prefix=$1 is still running" >&2; exit 1
}

run() { # backend size
  await_gone jvb; await_gone jvf
  rm -f "$dir"/*.sock "$dir"/*.fifo
  mkfifo "$dir/f.fifo" "$dir/b.fifo"
  (sleep $((secs + ${WARMUP:-0} + 30))) > "$dir/b.fifo" &
  local keep=$!
  local pid
  pid=$(backend_$1)
  await_listening "$dir/a.sock" "$pid" && await_listening "$dir/b.sock" "$pid" || { cat "$dir/backend.log" >&2; exit 1; }
  # the JVM's own pid (bin/vhost-user execs java)
  local warm=${WARMUP:-0}
  local c0; c0=$(cpu "$pid")
  local w0 w1 wc0 wc1
  # testpmd's lines, each stamped with the time it arrived (the steady-state window needs them)
  timeout -s INT "$((secs + warm + (warm > 0 ? 2 : 0)))" stdbuf -oL dpdk-testpmd --no-huge -m 512 --no-pci -l 0,1 --file-prefix=jvf \
      --vdev "net_virtio_user0,path=$dir/a.sock,queues=1,queue_size=1024${VUSER_OPTS:+,$VUSER_OPTS}" \
      --vdev "net_virtio_user1,path=$dir/b.sock,queues=1,queue_size=1024${VUSER_OPTS:+,$VUSER_OPTS}" \
      -- --forward-mode=io --nb-cores=1 --tx-first --stats-period "$( [ "$warm" -gt 0 ] && echo 1 || echo 5 )" --total-num-mbufs=16384 \
      --txpkts="$2" ${FRONT_OPTS:-} < /dev/null 2>&1 | while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done > "$dir/front.log" &
  local front=$!
  if [ "$warm" -gt 0 ]; then
    # after the warm-up (the JVM's JIT compiling, on the backend's CPU), a window of secs - 1 s
    sleep "$warm"; w0=$EPOCHREALTIME; wc0=$(cpu "$pid")
    sleep "$((secs - 1))"; w1=$EPOCHREALTIME; wc1=$(cpu "$pid")
  fi
  wait "$front" || true
  local c1; c1=$(cpu "$pid")
  kill "$pid" 2>/dev/null || true; kill $keep 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  grep -q "Rx-pps" "$dir/front.log" || { echo "net-pmd: the front-end measured nothing:" >&2; grep -E "EAL|Cause|rror" "$dir/front.log" | head -5 >&2; exit 1; }
  local skip=3; [ "$warm" -gt 0 ] && skip=$((2 * warm + 1))
  local pps; pps=$(grep "Rx-pps" "$dir/front.log" | awk '{print $3}' | sed -n "$skip,\$p" | sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print a[int((NR + 1) / 2)]}')
  local total; total=$(grep -E "^[0-9.]+   RX-packets" "$dir/front.log" | tail -1 | awk '{print $3}')
  local cpus; cpus=$(echo "scale=2; ($c1 - $c0) / $ticks" | bc)
  local per; per=$(echo "scale=0; ${total:-0} / ($cpus + 0.001)" | bc)
  local steady=""
  if [ "$warm" -gt 0 ]; then
    # packets both ports had received at w0 and w1, interpolated between testpmd's 1 s samples
    # (each "Port statistics" block: the two ports' cumulative RX-packets, stamped when printed)
    local inwin; inwin=$(awk -v a="$w0" -v b="$w1" '
        / Port statistics / { n = 0; sum = 0; next }
        / RX-packets: / && n < 2 { sum += $3; n++; if (n == 2) { t[k] = $1; p[k] = sum; k++ } }
        function at(x,   i) { for (i = 1; i < k; i++) if (t[i] >= x) return p[i-1] + (p[i] - p[i-1]) * (x - t[i-1]) / (t[i] - t[i-1]); return -1 }
        END { pa = at(a); pb = at(b); if (pa < 0 || pb < 0) print "none"; else printf "%d", pb - pa }' "$dir/front.log")
    local wcpu; wcpu=$(echo "scale=2; ($wc1 - $wc0) / $ticks" | bc)
    local wper=n/a # no statistics line after the window's end: no figure rather than a wrong one
    [ "$inwin" = none ] || wper=$(echo "scale=0; $inwin / ($wcpu + 0.001)" | bc)
    steady=$(printf ', after %d s: %9s per backend CPU-second (%s CPU-s in %.1f s)' "$warm" \
        "$wper" "$wcpu" "$(echo "$w1 - $w0" | bc)")
  fi
  printf '%-8s %s %5d bytes: %9s pps per direction, backend %6s CPU-s, %9s packets per backend CPU-second%s\n' "$1" "${VUSER_OPTS:-split,mrg_rxbuf=1}" "$2" "$pps" "$cpus" "$per" "$steady"
}

for r in $(seq 1 "$rounds"); do
  for s in "${sizes[@]}"; do
    for b in ${BACKENDS:-jvirtio dpdk}; do
      run "$b" "$s"
    done
  done
done
