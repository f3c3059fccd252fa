#!/usr/bin/env bash
# Backend CPU for a real guest's I/O, by hand: a QEMU TCG guest (q35, -smp 2, 256 MiB memfd) runs
# the test guest's write-and-read workload (jvirtio=restart: six rounds of four direct-I/O writers
# and four readers on two queues, every block verified, no restart) against bin/vhost-user-blk
# with its defaults and with other flags (default: --poll-credit-ns 0), interleaved; prints
# whether the guest verified its data, the wall time and the backend's CPU time (utime + stime
# from exec to the guest's power-off, start-up included). The same work each run, so the CPU
# times compare. Under TCG the guest is slow: this is the lightly loaded queue of a real guest.
# Usage: bench/guest-cpu.sh [rounds]      GUEST_CPU_OTHER="flags" sets the other backend's flags
#   Needs qemu-system-x86 and the test guest (made by the QEMU tests, or by
#   examples/src/test/guest/prepare.sh ~/.cache/jvirtio/guest).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
case "$rounds" in *[!0-9]* | "") echo "usage: bench/guest-cpu.sh [rounds]" >&2; exit 2 ;; esac
read -r -a other <<<"${GUEST_CPU_OTHER:---poll-credit-ns 0}"
cache=~/.cache/jvirtio/guest
kernel=$(ls "$cache"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1) || true
initrd=$cache/initrd.gz
[ -n "$kernel" ] && [ -f "$initrd" ] || { echo "no test guest in $cache: run examples/src/test/guest/prepare.sh $cache" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "needs qemu-system-x86_64" >&2; exit 2; }
"$root/bin/vhost-user-blk" --help >/dev/null   # the jars and the start-up cache, outside the measurement
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)

one() { # label flags...
  local label=$1 b t0 t1 s0 s1
  shift
  rm -f "$work/a.sock" "$work/disk.img"
  truncate -s 64M "$work/disk.img"
  "$root/bin/vhost-user-blk" --socket "$work/a.sock" --image "$work/disk.img" --queues 2 "$@" >"$work/backend.log" 2>&1 &
  b=$!
  until [ -S "$work/a.sock" ]; do kill -0 $b 2>/dev/null || { cat "$work/backend.log" >&2; exit 1; }; sleep 0.05; done
  s0=$(date +%s%N)
  timeout 300 qemu-system-x86_64 -machine q35,accel=tcg,memory-backend=mem -m 256M \
    -object memory-backend-memfd,id=mem,size=256M,share=on -nographic -kernel "$kernel" -initrd "$initrd" -smp 2 \
    -append "console=ttyS0 quiet panic=-1 jvirtio=restart" \
    -chardev socket,id=vublk0,path="$work/a.sock" -device vhost-user-blk-pci,chardev=vublk0,num-queues=2 </dev/null >"$work/qemu.log" 2>&1 || true
  s1=$(date +%s%N)
  t1=$(awk '{print $14 + $15}' "/proc/$b/stat")
  kill $b; wait $b 2>/dev/null || true
  local ok=failed
  grep -aq "RESTART DATA OK" "$work/qemu.log" && ! grep -aq "MISMATCH\|WRITE FAILED" "$work/qemu.log" && ok=verified
  printf '%-8s guest %-8s wall %6d ms  backend CPU %5d ms\n' "$label" "$ok" $(((s1 - s0) / 1000000)) $((t1 * 1000 / hz))
}

echo "other: ${other[*]}"
for _ in $(seq "$rounds"); do
  one default
  one other "${other[@]}"
done
