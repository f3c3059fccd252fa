package org.jvirtio.examples.blk;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;

import com.google.inject.Module;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlkQueueStats;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.NullBackend;
import org.jvirtio.blk.RamBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.runner.DeviceCommand;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bin/vhost-user blk} (and {@code bin/vhost-user-blk}): a virtio-blk disk for QEMU's
 * vhost-user-blk-pci. The flags are checked and the disk opened before anything listens; Guice
 * then builds the device ({@link VhostUserBlkModule}) with io_uring for images.
 */
@Command(name = "blk", sortOptions = false,
        description = {"virtio-blk: QEMU's vhost-user-blk-pci uses the disk as a virtio-blk device.",
            "Exactly one of --image, --ram, --null. Sizes take K, M, G suffixes (powers of 1024).",
            "SIGHUP re-reads the image size and announces a resize to the front-end; SIGTERM/SIGINT stop cleanly."})
public final class BlkCommand implements DeviceCommand {
    static final class Disk {
        @Option(names = "--image", paramLabel = "FILE", description = "Raw image file or block device.")
        Path image;
        @Option(names = "--ram", paramLabel = "SIZE", description = "A RAM disk of SIZE bytes.")
        String ram;
        @Option(names = "--null", paramLabel = "SIZE", description = "A null disk of SIZE bytes (reads zeros, drops writes).")
        String nullSize;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Disk disk;

    @Option(names = "--queues", defaultValue = "1", description = "Request queues (default: ${DEFAULT-VALUE}).")
    int queues;

    @Option(names = "--queue-size", defaultValue = "1024",
            description = "Largest queue size offered; the front-end picks the size up to it (QEMU's queue-size property, 128 or 256 by default, at most 1024). seg_max is min(this, 128) - 2: set it to the front-end's ring size if that is below 128 and indirect descriptors are off (default: ${DEFAULT-VALUE}).")
    int queueSize;

    @Option(names = "--read-only", description = "Refuse writes (the disk is offered with VIRTIO_BLK_F_RO).")
    boolean readOnly;

    @Option(names = "--direct", description = "Open the image with O_DIRECT (no page cache, no FLUSH needed).")
    boolean direct;

    @Option(names = "--serial", defaultValue = "jvirtio", description = "GET_ID answer, up to 20 ASCII bytes (default: ${DEFAULT-VALUE}).")
    String serial;

    private BlockBackend backend;

    static long parseSize(String flag, String s) {
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

    /** Checks the flags and opens the disk: every problem is one line, before anything listens. */
    @Override
    public Module module() throws IOException {
        if (queues < 1 || queues > 64) {
            throw new IllegalArgumentException("--queues must be in [1, 64], got " + queues);
        }
        BlkOptions options = new BlkOptions(queues, queueSize, serial, readOnly);
        if (disk.image != null) {
            backend = FileBackend.open(disk.image, readOnly, direct);
        } else if (direct) {
            throw new IllegalArgumentException("--direct only applies to --image");
        } else {
            backend = disk.ram != null ? new RamBackend(parseSize("--ram", disk.ram)) : new NullBackend(parseSize("--null", disk.nullSize));
        }
        return new VhostUserBlkModule(backend, options);
    }

    /** The disk, once {@link #module()} opened it. */
    BlockBackend disk() {
        return backend;
    }

    @Override
    public String describe() {
        return backend.describe();
    }

    @Override
    public String qemuDeviceOptions(VirtioDevice device) {
        return ",num-queues=" + queues;
    }

    @Override
    public String stats(VirtioDevice device) {
        VirtioBlkDevice blk = (VirtioBlkDevice) device;
        StringBuilder sb = new StringBuilder("stats:");
        for (int q = 0; q < queues; q++) {
            BlkQueueStats s = blk.stats(q);
            sb.append(String.format(" q%d requests=%d bytes=%d errors=%d in-flight=%d", q, s.requests(), s.bytes(), s.errors(), s.inFlight()));
        }
        return sb.toString();
    }

    /** SIGHUP: the image was resized; pick up the new size and tell the front-end. */
    @Override
    public String reload(VirtioDevice device) throws IOException {
        return "capacity is " + ((VirtioBlkDevice) device).refreshCapacity() + " sectors";
    }

    @Override
    public void close() throws IOException {
        if (backend != null) {
            backend.close();
            backend = null;
        }
    }
}
