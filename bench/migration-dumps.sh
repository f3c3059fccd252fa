#!/usr/bin/env bash
# Live migration with memory dumps, by hand (issue 12): two QEMUs (q35, TCG, -smp 2, 256 MiB
# memfd) each on its own vhost-user-blk backend over one image, the test guest's write-and-read
# rounds (jvirtio=restart), `migrate` during round 2 with the destination started -S; after it
# completes both QEMUs dump guest memory (HMP pmemsave) and the pages that differ are listed; then
# the destination runs and the script says whether its guest finished or crashed.
# Usage: bench/migration-dumps.sh [jvirtio|qsd] [runs] [--load]
#   --load keeps one CPU busy with a shell loop (QEMU 7.2's TCG loses CPU-written pages then,
#   with either backend: docs/FEATURES.md). Needs qemu-system-x86, qemu-storage-daemon (for qsd),
#   socat, python3, and the test guest (made by the QEMU tests, or by
#   examples/src/test/guest/prepare.sh ~/.cache/jvirtio/guest).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
backend=${1:-jvirtio}
runs=${2:-5}
load=${3:-}
case "$backend" in jvirtio | qsd) ;; *) echo "usage: bench/migration-dumps.sh [jvirtio|qsd] [runs] [--load]" >&2; exit 2 ;; esac
cache=~/.cache/jvirtio/guest
kernel=$(ls "$cache"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1) || true
initrd=$cache/initrd.gz
[ -n "$kernel" ] && [ -f "$initrd" ] || { echo "no test guest in $cache: run examples/src/test/guest/prepare.sh $cache" >&2; exit 2; }
for c in qemu-system-x86_64 socat python3; do command -v $c >/dev/null || { echo "needs $c" >&2; exit 2; }; done
[ "$backend" = jvirtio ] && "$root/bin/vhost-user-blk" --help >/dev/null

hog=""
[ "$load" = --load ] && { (while :; do :; done) & hog=$!; }
trap '[ -n "$hog" ] && kill $hog 2>/dev/null; kill $(jobs -p) 2>/dev/null || true' EXIT

one() { # run number
  local d a b qa qb
  d=$(mktemp -d /tmp/migration-dumps.XXXX)
  truncate -s 64M "$d/disk.img"
  for s in a b; do
    if [ "$backend" = qsd ]; then
      qemu-storage-daemon --blockdev driver=file,node-name=d0,filename="$d/disk.img",cache.direct=off,locking=off \
        --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path="$d/$s.sock",writable=on,num-queues=2 >"$d/backend-$s.log" 2>&1 &
    else
      "$root/bin/vhost-user-blk" --socket "$d/$s.sock" --image "$d/disk.img" --queues 2 --iothreads 2 >"$d/backend-$s.log" 2>&1 &
    fi
    eval "$s=\$!"
  done
  while [ ! -S "$d/a.sock" ] || [ ! -S "$d/b.sock" ]; do sleep 0.05; done
  q() { qemu-system-x86_64 -machine q35,accel=tcg,memory-backend=mem -m 256M -object memory-backend-memfd,id=mem,size=256M,share=on \
      -nographic -kernel "$kernel" -initrd "$initrd" -smp 2 -append "console=ttyS0 quiet panic=-1 jvirtio=restart" \
      -chardev socket,id=vublk0,path="$1" -device vhost-user-blk-pci,chardev=vublk0,num-queues=2 "${@:2}" </dev/null; }
  q "$d/a.sock" -monitor unix:"$d/mon-a",server=on,wait=off >"$d/qemu-a.log" 2>&1 & qa=$!
  q "$d/b.sock" -monitor unix:"$d/mon-b",server=on,wait=off -incoming unix:"$d/mig" -S >"$d/qemu-b.log" 2>&1 & qb=$!
  hmp() { echo "$2" | socat -t 5 - UNIX-CONNECT:"$d/$1" 2>/dev/null | tr -d '\r' | grep -v "^(qemu)\|QEMU .* monitor" || true; }
  until grep -aq "ROUND 2 WRITING" "$d/qemu-a.log"; do sleep 0.02; done
  hmp mon-a "migrate -d unix:$d/mig" >/dev/null
  until hmp mon-a "info migrate" | grep -q "Migration status: completed"; do sleep 0.2; done
  until hmp mon-b "info status" | grep "VM status: paused" | grep -vq inmigrate; do sleep 0.1; done
  hmp mon-a "pmemsave 0 268435456 \"$d/src.mem\"" >/dev/null; hmp mon-a "info status" >/dev/null
  hmp mon-b "pmemsave 0 268435456 \"$d/dst.mem\"" >/dev/null; hmp mon-b "info status" >/dev/null
  local differ
  differ=$(python3 - "$d" <<'PY'
import sys
d = sys.argv[1]
a = open(d + '/src.mem', 'rb').read()
b = open(d + '/dst.mem', 'rb').read()
pages = [p for p in range(len(a) // 4096) if a[p * 4096:(p + 1) * 4096] != b[p * 4096:(p + 1) * 4096]]
print(len(pages), ' '.join(hex(p * 4096) for p in pages[:10]))
PY
)
  [ "${differ%% *}" = 0 ] && rm -f "$d/src.mem" "$d/dst.mem"   # kept when they differ
  hmp mon-a quit >/dev/null
  hmp mon-b cont >/dev/null
  timeout 60 tail --pid=$qb -f /dev/null || true
  kill $a $b $qb 2>/dev/null || true
  wait $a $b $qa $qb 2>/dev/null || true
  local dest
  if grep -aq "GUEST: init\|Call Trace\|Kernel panic" "$d/qemu-b.log"; then dest="CRASHED"
  elif grep -aq "GUEST: DONE" "$d/qemu-b.log" && ! grep -aq "MISMATCH\|WRITE FAILED" "$d/qemu-b.log"; then dest="ok"
  else dest="FAILED"; fi
  echo "run $1: pages differing: $differ; destination $dest (logs in $d)"
}

for i in $(seq "$runs"); do one "$i"; done
