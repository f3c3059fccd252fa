#!/usr/bin/env bash
# Prepares the test guest in $1 (a cache directory): Debian's 6.1 kernel extracted with
# dpkg -x (never installed) and a busybox initramfs with the virtio, vfat and ext4 modules.
# Prints the kernel and initramfs paths. Needs: apt-get, dpkg, busybox-static, cpio, gzip.
set -euo pipefail
cache=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
cd "$cache"
if ! ls kernel/boot/vmlinuz-* >/dev/null 2>&1; then
  pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | cut -d' ' -f1 | sort -V | tail -n 1)
  [ -n "$pkg" ] || { echo "no linux-image-6.1.0-*-amd64 package known to apt" >&2; exit 1; }
  rm -rf kernel dl && mkdir -p dl && (cd dl && apt-get download "$pkg" >/dev/null 2>&1)
  dpkg -x dl/*.deb kernel
  rm -rf dl
fi
kernel=$(ls kernel/boot/vmlinuz-* | head -n 1)
modules=$(ls -d kernel/lib/modules/* | head -n 1)
if [ ! -f initrd.gz ] || [ "$here/init" -nt initrd.gz ] || [ "$here/prepare.sh" -nt initrd.gz ]; then
  rm -rf ir && mkdir -p ir/bin ir/mods ir/proc ir/sys ir/dev
  cp "$(command -v busybox)" ir/bin/busybox
  for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk virtio_rng failover net_failover virtio_net fat vfat nls_cp437 nls_ascii crc16 crc32c_generic mbcache jbd2 ext4; do
    # file names use dashes or underscores (virtio-rng.ko holds module virtio_rng)
    f=$(find "$modules" -name "$m.ko" -o -name "$m.ko.xz" -o -name "${m//_/-}.ko" -o -name "${m//_/-}.ko.xz" | head -n 1)
    [ -n "$f" ] || { echo "module $m not found in $modules" >&2; exit 1; }
    case "$f" in *.xz) xz -dc "$f" > "ir/mods/$m.ko" ;; *) cp "$f" "ir/mods/$m.ko" ;; esac
  done
  cp "$here/init" ir/init && chmod +x ir/init
  (cd ir && find . | cpio -o -H newc 2>/dev/null | gzip > ../initrd.gz)
  rm -rf ir
fi
echo "$cache/$kernel"
echo "$cache/initrd.gz"
