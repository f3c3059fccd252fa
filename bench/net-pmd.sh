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
  (sleep $((secs + 30))) > "$dir/b.fifo" &
  local keep=$!
  local pid
  pid=$(backend_$1)
  await_listening "$dir/a.sock" "$pid" && await_listening "$dir/b.sock" "$pid" || { cat "$dir/backend.log" >&2; exit 1; }
  # the JVM's own pid (bin/vhost-user execs java)
  local c0; c0=$(cpu "$pid")
  timeout -s INT "$secs" stdbuf -oL dpdk-testpmd --no-huge -m 512 --no-pci -l 0,1 --file-prefix=jvf \
      --vdev "net_virtio_user0,path=$dir/a.sock,queues=1,queue_size=1024${VUSER_OPTS:+,$VUSER_OPTS}" \
      --vdev "net_virtio_user1,path=$dir/b.sock,queues=1,queue_size=1024${VUSER_OPTS:+,$VUSER_OPTS}" \
      -- --forward-mode=io --nb-cores=1 --tx-first --stats-period 5 --total-num-mbufs=16384 --txpkts="$2" ${FRONT_OPTS:-} \
      < /dev/null > "$dir/front.log" 2>&1 || true
  local c1; c1=$(cpu "$pid")
  kill "$pid" 2>/dev/null || true; kill $keep 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  grep -q "Rx-pps" "$dir/front.log" || { echo "net-pmd: the front-end measured nothing:" >&2; grep -E "EAL|Cause|rror" "$dir/front.log" | head -5 >&2; exit 1; }
  local pps; pps=$(grep "Rx-pps" "$dir/front.log" | awk '{print $2}' | sed -n '3,$p' | sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print a[int((NR + 1) / 2)]}')
  local total; total=$(grep -E "^  RX-packets" "$dir/front.log" | tail -1 | awk '{print $2}')
  local cpus; cpus=$(echo "scale=2; ($c1 - $c0) / $ticks" | bc)
  local per; per=$(echo "scale=0; ${total:-0} / ($cpus + 0.001)" | bc)
  printf '%-8s %s %5d bytes: %9s pps per direction, backend %6s CPU-s, %9s packets per backend CPU-second\n' "$1" "${VUSER_OPTS:-split,mrg_rxbuf=1}" "$2" "$pps" "$cpus" "$per"
}

for r in $(seq 1 "$rounds"); do
  for s in "${sizes[@]}"; do
    for b in ${BACKENDS:-jvirtio dpdk}; do
      run "$b" "$s"
    done
  done
done
