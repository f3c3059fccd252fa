package org.jvirtio.blk;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueStats;
import org.jvirtio.api.VirtioDevice;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.api.VirtioFeatures.*;
import static org.jvirtio.blk.VirtioBlk.*;

/**
 * The virtio-blk device model (VIRTIO 1.3, 5.2), transport-agnostic. Features follow the
 * backend: FLUSH and CONFIG_WCE for a volatile cache, DISCARD and WRITE_ZEROES where supported,
 * RO for a read-only disk. Each queue's {@link BlkQueue} is the blk protocol; a {@link BlkIoFactory}
 * opens each queue's channel to the backend (inline synchronous calls by default, or io_uring
 * from virtio-blk-dataplane). The framework's queue host (not this device) runs the queues.
 */
public final class VirtioBlkDevice implements VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlkDevice.class);

    static final int SIZE_MAX = 1 << 20;
    /**
     * Data buffers per request the driver may use, at most: a request of seg_max data buffers
     * takes seg_max + 2 descriptors, and a driver without indirect descriptors cannot put more
     * descriptors in flight than its ring has (Linux then waits for room forever). The ring size
     * is the front-end's choice, made after it read the config, so seg_max assumes the smallest
     * ring QEMU uses by default (128), or --queue-size if that is smaller. QEMU's own virtio-blk
     * does the same with its own ring size (seg-max-adjust).
     */
    static final int SEG_MAX_RING = 128;
    static final long MAX_DISCARD_SECTORS = 0x3fffff;
    static final int MAX_DISCARD_SEG = 32;
    static final long MAX_WRITE_ZEROES_SECTORS = 0x3fffff;
    static final int MAX_WRITE_ZEROES_SEG = 32;

    private final BlockBackend backend;
    private final BlkOptions options;
    private final long features;
    /** Each queue's counters, as the framework last bound them (kept across restarts). */
    private final QueueStats[] stats;
    private final BlkIoFactory ioFactory;
    private final AtomicInteger generation = new AtomicInteger();
    private volatile long capacitySectors;
    private volatile boolean writeback;
    private volatile long negotiated;
    private volatile DeviceContext context;

    /** A device that calls the backend synchronously on each queue's thread. */
    public VirtioBlkDevice(BlockBackend backend, BlkOptions options) {
        this(backend, options, BlkIoFactory.INLINE);
    }

    public VirtioBlkDevice(BlockBackend backend, BlkOptions options, BlkIoFactory ioFactory) {
        this.backend = backend;
        this.ioFactory = ioFactory;
        this.options = options;
        this.capacitySectors = backend.size() / SECTOR_SIZE;
        boolean ro = options.readOnly() || backend.readOnly();
        long f = mask(BLK_SIZE_MAX, BLK_SEG_MAX, BLK_BLK_SIZE, BLK_TOPOLOGY, BLK_FLUSH, BLK_MQ);
        if (backend.volatileCache()) {
            f |= bit(BLK_CONFIG_WCE);
        }
        if (ro) {
            f |= bit(BLK_RO);
        } else {
            if (backend.supportsDiscard()) {
                f |= bit(BLK_DISCARD);
            }
            if (backend.supportsWriteZeroes()) {
                f |= bit(BLK_WRITE_ZEROES);
            }
        }
        this.features = f;
        this.writeback = backend.volatileCache();
        this.stats = QueueStats.forQueues(options.queues());
        backend.watchResize(this::resizedElsewhere);
    }

    /** The backend saw its size change by itself (an RBD image resized elsewhere). */
    private void resizedElsewhere() {
        try {
            refreshCapacity();
        } catch (IOException e) {
            LOG.warn("virtio-blk: reading the new size of {} failed: {}", backend.describe(), e.getMessage());
        }
    }

    @Override
    public int deviceId() {
        return DEVICE_ID;
    }

    @Override
    public long deviceFeatures() {
        return features;
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    /** The whole configuration space as it is now. */
    private byte[] config() {
        ByteBuffer b = ByteBuffer.allocate(CONFIG_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(CFG_CAPACITY, capacitySectors);
        b.putInt(CFG_SIZE_MAX, SIZE_MAX);
        b.putInt(CFG_SEG_MAX, Math.min(options.queueSize(), SEG_MAX_RING) - 2);
        b.putInt(CFG_BLK_SIZE, SECTOR_SIZE);
        b.put(CFG_PHYSICAL_BLOCK_EXP, (byte) 3); // 4 KiB physical blocks
        b.put(CFG_ALIGNMENT_OFFSET, (byte) 0);
        b.putShort(CFG_MIN_IO_SIZE, (short) 1);
        b.putInt(CFG_OPT_IO_SIZE, 0);
        b.put(CFG_WRITEBACK, (byte) (writeback ? 1 : 0));
        b.putShort(CFG_NUM_QUEUES, (short) options.queues());
        b.putInt(CFG_MAX_DISCARD_SECTORS, (int) MAX_DISCARD_SECTORS);
        b.putInt(CFG_MAX_DISCARD_SEG, MAX_DISCARD_SEG);
        b.putInt(CFG_DISCARD_SECTOR_ALIGNMENT, 8);
        b.putInt(CFG_MAX_WRITE_ZEROES_SECTORS, (int) MAX_WRITE_ZEROES_SECTORS);
        b.putInt(CFG_MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SEG);
        b.put(CFG_WRITE_ZEROES_MAY_UNMAP, (byte) 1);
        return b.array();
    }

    @Override
    public byte[] readConfig(int offset, int length) {
        byte[] out = new byte[length];
        System.arraycopy(config(), offset, out, 0, length);
        return out;
    }

    /** Only {@code writeback} is writable, and only with CONFIG_WCE (VIRTIO 1.3, 5.2.5.1). */
    @Override
    public void writeConfig(int offset, byte[] data) {
        for (int i = 0; i < data.length; i++) {
            if (offset + i == CFG_WRITEBACK && has(negotiated, BLK_CONFIG_WCE)) {
                writeback = data[i] != 0;
                generation.incrementAndGet();
                LOG.info("virtio-blk: the driver switched the cache to {}", writeback ? "writeback" : "writethrough");
            }
        }
    }

    @Override
    public int configGeneration() {
        return generation.get();
    }

    @Override
    public int queueCount() {
        return options.queues();
    }

    @Override
    public int maxQueueSize(int index) {
        return options.queueSize();
    }

    @Override
    public void activate(DeviceContext ctx) {
        this.context = ctx;
        this.negotiated = ctx.negotiatedFeatures();
        if (!has(negotiated, BLK_CONFIG_WCE)) {
            // Without CONFIG_WCE the driver cannot change it; with FLUSH it flushes itself.
            writeback = backend.volatileCache();
        }
    }

    /** The blk protocol of one queue; the framework's queue engine runs it. */
    @Override
    public BlkQueue openQueue(QueueBinding q) {
        stats[q.index()] = q.stats();
        return new BlkQueue(this, q, backend, ioFactory, options.serial());
    }

    @Override
    public void reset() {
        negotiated = 0;
        writeback = backend.volatileCache();
        context = null;
    }

    /**
     * Picks up a changed backend size and tells the driver (a config change interrupt; over
     * vhost-user a CONFIG_CHANGE_MSG).
     *
     * @return the capacity in sectors now
     */
    public synchronized long refreshCapacity() throws IOException {
        long sectors = backend.refreshSize() / SECTOR_SIZE;
        if (sectors != capacitySectors) {
            LOG.info("virtio-blk: capacity changed from {} to {} sectors", capacitySectors, sectors);
            capacitySectors = sectors;
            generation.incrementAndGet();
            DeviceContext ctx = context;
            if (ctx != null) {
                ctx.notifyConfigChange();
            }
        }
        return sectors;
    }

    long capacitySectors() {
        return capacitySectors;
    }

    boolean isReadOnly() {
        return has(features, BLK_RO);
    }

    boolean discardOffered() {
        return has(features, BLK_DISCARD);
    }

    boolean writeZeroesOffered() {
        return has(features, BLK_WRITE_ZEROES);
    }

    /** Writes must reach stable storage before completing: a volatile cache in writethrough mode. */
    boolean writeThrough() {
        return !writeback && backend.volatileCache();
    }

    /** Queue {@code queue}'s counters (requests, bytes, errors, in flight), as its transport keeps them. */
    public QueueStats stats(int queue) {
        return stats[queue];
    }

    public BlockBackend backend() {
        return backend;
    }
}
