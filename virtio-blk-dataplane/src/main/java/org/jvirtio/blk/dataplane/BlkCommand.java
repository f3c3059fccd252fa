package org.jvirtio.blk.dataplane;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

import com.google.inject.Module;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.NullBackend;
import org.jvirtio.blk.RamBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.blk.rbd.RbdBackend;
import org.jvirtio.blk.rbd.RbdImageName;
import org.jvirtio.blk.rbd.RbdOptions;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;

/**
 * {@code bin/vhost-user blk} (and {@code bin/vhost-user-blk}): a virtio-blk disk for QEMU's
 * vhost-user-blk-pci. The flags are checked and the disk opened before anything listens; Guice
 * then builds the device ({@link BlkModule}) with io_uring for images.
 */
public final class BlkCommand implements DeviceCommand<VirtioBlkDevice> {
    Path image;
    String ram;
    String nullSize;
    int queues;
    int queueSize;
    boolean readOnly;
    boolean direct;
    String serial;
    String rbd;
    Path cephConf;
    String cephUser;
    int rbdTimeout;
    String cephOptions;
    String rbdLockDir;

    private BlockBackend backend;

    /** A size with an optional K, M, G or T suffix (powers of 1024), a positive multiple of 512. */
    public static long parseSize(String flag, String s) {
        String t = s.trim().toUpperCase(Locale.ROOT);
        long mult = 1;
        if (t.endsWith("K")) {
            mult = 1L << 10;
        } else if (t.endsWith("M")) {
            mult = 1L << 20;
        } else if (t.endsWith("G")) {
            mult = 1L << 30;
        } else if (t.endsWith("T")) {
            mult = 1L << 40;
        }
        if (mult != 1) {
            t = t.substring(0, t.length() - 1);
        }
        long n;
        try {
            n = Math.multiplyExact(Long.parseLong(t), mult);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException(flag + " " + s + " is not a size (e.g. 512M, 4G)");
        }
        if (n <= 0 || n % 512 != 0) {
            throw new IllegalArgumentException(flag + " " + s + " is not a positive multiple of 512 bytes");
        }
        return n;
    }

    @Override
    public String name() {
        return "blk";
    }

    @Override
    public String description() {
        return """
                virtio-blk: QEMU's vhost-user-blk-pci uses the disk as a virtio-blk device.
                Exactly one of --image, --rbd, --ram, --null. Sizes take K, M, G, T suffixes (powers of 1024).
                SIGHUP re-reads the image size and announces a resize to the front-end; SIGTERM/SIGINT stop cleanly.""";
    }

    @Override
    public void flags(Flags flags) {
        flags.path("--image", "FILE", "Raw image file or block device.", v -> image = v);
        flags.string("--ram", "SIZE", "A RAM disk of SIZE bytes.", null, v -> ram = v);
        flags.string("--null", "SIZE", "A null disk of SIZE bytes (reads zeros, drops writes).", null, v -> nullSize = v);
        flags.integer("--queues", "N", "Request queues.", 1, v -> queues = v);
        flags.integer("--queue-size", "N",
                "Largest queue size offered; the front-end picks the size up to it (QEMU's queue-size property, 128 or 256 by default, at most 1024). seg_max is min(this, 128) - 2: set it to the front-end's ring size if that is below 128 and indirect descriptors are off.",
                1024, v -> queueSize = v);
        flags.toggle("--read-only", "Refuse writes (the disk is offered with VIRTIO_BLK_F_RO).", () -> readOnly = true);
        flags.toggle("--direct", "Open the image with O_DIRECT (no page cache, no FLUSH needed).", () -> direct = true);
        flags.string("--rbd", "POOL/IMAGE",
                "An RBD image on a Ceph cluster (POOL/IMAGE or POOL/NAMESPACE/IMAGE), through librbd; POOL/IMAGE@SNAPSHOT serves a snapshot, read-only.",
                null, v -> rbd = v);
        flags.path("--ceph-conf", "FILE", "ceph.conf for --rbd (default: librados' search, $CEPH_CONF, /etc/ceph/ceph.conf).",
                v -> cephConf = v);
        flags.string("--ceph-user", "NAME", "The Ceph client for --rbd, without client. (its key from the keyring ceph.conf names).",
                null, v -> cephUser = v);
        flags.integer("--rbd-timeout", "SECONDS",
                "--rbd: an operation no OSD answers fails with IOERR after this long; connecting gives up after min(this, 10).",
                30, v -> rbdTimeout = v);
        flags.string("--ceph-options", "KEY=VALUE,...",
                "--rbd: librados/librbd settings applied after ceph.conf and ours (e.g. rbd_cache=true,rbd_cache_policy=writeback for librbd's write-back cache).", null,
                v -> cephOptions = v);
        flags.string("--rbd-lock-dir", "DIR|none",
                "--rbd: where this host's backends record their Ceph clients (one file each, the directory private to the user), so that a backend restarted after a crash breaks the image's exclusive lock its dead predecessor held at once, instead of waiting for the OSD to drop the dead client's watch (osd_client_watch_timeout, 30 s). Default: $XDG_RUNTIME_DIR/jvirtio-rbd, /run/jvirtio-rbd for root, else /tmp/jvirtio-rbd-UID.",
                null, v -> rbdLockDir = v);
        flags.string("--serial", "TEXT", "GET_ID answer, up to 20 ASCII bytes.", "jvirtio", v -> serial = v);
    }

    /** Checks the flags and opens the disk: every problem is one line, before anything listens. */
    @Override
    public Class<VirtioBlkDevice> deviceClass() {
        return VirtioBlkDevice.class;
    }

    @Override
    public List<Module> modules() throws IOException {
        int disks = (image != null ? 1 : 0) + (ram != null ? 1 : 0) + (nullSize != null ? 1 : 0) + (rbd != null ? 1 : 0);
        if (disks != 1) {
            throw new IllegalArgumentException("name exactly one disk: --image FILE, --rbd POOL/IMAGE, --ram SIZE or --null SIZE");
        }
        if (rbd == null && (cephConf != null || cephUser != null || cephOptions != null || rbdLockDir != null)) {
            throw new IllegalArgumentException("--ceph-conf, --ceph-user, --ceph-options and --rbd-lock-dir only apply to --rbd");
        }
        if (rbdTimeout < 1 || rbdTimeout > 3600) {
            throw new IllegalArgumentException("--rbd-timeout must be in [1, 3600] seconds, got " + rbdTimeout);
        }
        if (queues < 1 || queues > 64) {
            throw new IllegalArgumentException("--queues must be in [1, 64], got " + queues);
        }
        BlkOptions options = new BlkOptions(queues, queueSize, serial, readOnly);
        if (image != null) {
            backend = FileBackend.open(image, readOnly, direct);
        } else if (direct) {
            throw new IllegalArgumentException("--direct only applies to --image");
        } else if (rbd != null) {
            RbdImageName name = RbdImageName.parse(rbd);
            RbdOptions o = RbdOptions.defaults().withConf(cephConf).withUser(cephUser)
                    .withOpTimeout(rbdTimeout).withConnectTimeout(Math.min(rbdTimeout, 10)).withSettings(cephOptions);
            if (rbdLockDir != null) {
                if (rbdLockDir.isEmpty()) {
                    throw new IllegalArgumentException("--rbd-lock-dir needs a directory, or none");
                }
                o = o.withLockDir(rbdLockDir.equals("none") ? null : java.nio.file.Path.of(rbdLockDir));
            }
            backend = RbdBackend.open(name, o, readOnly, queues);
        } else {
            backend = ram != null ? new RamBackend(parseSize("--ram", ram)) : new NullBackend(parseSize("--null", nullSize));
        }
        return List.of(new BlkModule(backend, options));
    }

    /** The disk, once {@link #module()} opened it. */
    /** The disk {@link #modules()} opened, or null before. */
    public BlockBackend disk() {
        return backend;
    }

    @Override
    public String describe(VirtioBlkDevice device) {
        return backend.describe();
    }

    @Override
    public String qemuDeviceOptions(VirtioBlkDevice device) {
        return ",num-queues=" + queues;
    }

    @Override
    public String reload(VirtioBlkDevice device) throws IOException {
        return "capacity is " + device.refreshCapacity() + " sectors";
    }

    @Override
    public void close() throws IOException {
        if (backend != null) {
            backend.close();
            backend = null;
        }
    }
}
