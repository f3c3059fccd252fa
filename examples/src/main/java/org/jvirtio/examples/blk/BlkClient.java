package org.jvirtio.examples.blk;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.transport.vhostuser.VhostUserFrontend;
import org.jvirtio.transport.vhostuser.VhostUserProtocol;

/**
 * A user-space virtio-blk driver over vhost-user (the role libblkio plays): connects to any
 * vhost-user-blk backend (jvirtio's or qemu-storage-daemon's), shares memfd guest memory, sets
 * up one queue, and issues requests with up to {@code depth} in flight. One thread.
 */
public final class BlkClient implements AutoCloseable {
    private static final long RING = 0x1000;
    private static final long INDIRECT = 0x20000;
    private static final long SLOTS = 0x100000;

    /** Called for each completion: the request's tag, its status byte, and its latency. */
    @FunctionalInterface
    public interface Completion {
        void done(int tag, int status, long nanos);
    }

    private final VhostUserFrontend fe;
    private final GuestMemory memory;
    private final SplitQueueDriver queue;
    private final EventFd kick;
    private final EventFd call;
    private final int depth;
    private final int maxBytes;
    private final long capacitySectors;
    private final long features;
    private final long[] started;
    private final long[] addrs = new long[3];
    private final int[] lens = new int[3];

    /** @param maxBytes largest data transfer per request */
    public BlkClient(Path socket, int depth, int maxBytes) throws IOException {
        if (depth < 1 || depth > 128) {
            throw new IllegalArgumentException("queue depth must be in [1, 128]: " + depth);
        }
        this.depth = depth;
        this.maxBytes = maxBytes;
        this.fe = VhostUserFrontend.connect(socket);
        MemoryMapping m = MemoryMapping.memfd("blk-client", SLOTS + (long) depth * slotSize());
        this.memory = GuestMemory.of(GuestRegion.of(0, m));
        m.release();
        long wanted = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.EVENT_IDX, VirtioFeatures.INDIRECT_DESC,
                VirtioFeatures.BLK_FLUSH, VirtioFeatures.BLK_SEG_MAX, VirtioFeatures.BLK_BLK_SIZE, VirtioFeatures.BLK_DISCARD,
                VirtioFeatures.BLK_WRITE_ZEROES, VirtioFeatures.BLK_RO, VirtioFeatures.BLK_MQ);
        this.features = fe.negotiate(wanted, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES);
        this.capacitySectors = ByteBuffer.wrap(fe.getConfig(0, 8)).order(ByteOrder.LITTLE_ENDIAN).getLong();
        fe.setMemTable(memory);
        int size = 256;
        this.queue = SplitQueueDriver.at(memory, RING, size, features, INDIRECT, 4);
        try {
            this.kick = EventFd.create(false);
            this.call = EventFd.create(false);
        } catch (org.jvirtio.api.linux.ErrnoException e) {
            throw new IOException(e);
        }
        fe.setVringNum(0, size);
        fe.setVringBase(0, 0);
        fe.setVringAddr(0, queue.descAddr(), queue.availAddr(), queue.usedAddr());
        fe.setVringKick(0, kick);
        fe.setVringCall(0, call);
        fe.setVringEnable(0, true);
        this.started = new long[size];
    }

    private int slotSize() {
        return 4096 + ((maxBytes + 4095) & ~4095);
    }

    public long capacitySectors() {
        return capacitySectors;
    }

    public long features() {
        return features;
    }

    /** Guest memory of request slot {@code tag}'s data buffer. */
    public long dataAddress(int tag) {
        return SLOTS + (long) tag * slotSize() + 4096;
    }

    public GuestMemory memory() {
        return memory;
    }

    /**
     * Submits request {@code tag} (0 &lt;= tag &lt; depth; its slot must be free). Data is in
     * the tag's slot ({@link #dataAddress}).
     */
    public void submit(int tag, int type, long sector, int bytes) {
        long slot = SLOTS + (long) tag * slotSize();
        memory.writeU32(slot, type);
        memory.writeU32(slot + 4, 0);
        memory.writeU64(slot + 8, sector);
        memory.writeU8(slot + 16, 0xff);
        addrs[0] = slot;
        lens[0] = VirtioBlk.HEADER_SIZE;
        int n;
        int readable;
        if (bytes == 0) {
            addrs[1] = slot + 16;
            lens[1] = 1;
            n = 2;
            readable = 1;
        } else {
            addrs[1] = slot + 4096;
            lens[1] = bytes;
            addrs[2] = slot + 16;
            lens[2] = 1;
            n = 3;
            readable = type == VirtioBlk.T_OUT || type == VirtioBlk.T_DISCARD || type == VirtioBlk.T_WRITE_ZEROES ? 2 : 1;
        }
        int head = (tag & 1) == 0 ? queue.add(addrs, lens, n, readable, tag) : queue.addIndirect(addrs, lens, n, readable, tag);
        if (head < 0) {
            throw new IllegalStateException("ring full");
        }
        started[tag] = System.nanoTime();
    }

    /** Publishes submitted requests and kicks if the backend wants it. */
    public void flushSubmissions() {
        if (queue.publish()) {
            kick.signal();
        }
    }

    /**
     * Waits (up to {@code timeoutMillis}) for at least one completion and reports all that are
     * there.
     *
     * @return completions reported
     */
    public int reap(Completion c, int timeoutMillis) throws IOException {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        while (true) {
            int n = queue.pollUsed((head, tag, len) -> {
                long slot = SLOTS + tag * slotSize();
                c.done((int) tag, memory.readU8(slot + 16), System.nanoTime() - started[(int) tag]);
            });
            if (n > 0) {
                return n;
            }
            if (queue.enableInterrupts()) {
                queue.disableInterrupts();
                continue;
            }
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                throw new IOException("no completion within " + timeoutMillis + " ms (" + queue.inFlight() + " in flight)");
            }
            call.await((int) Math.min(left, Integer.MAX_VALUE));
            queue.disableInterrupts();
        }
    }

    public int depth() {
        return depth;
    }

    /** Copies {@code data} into the tag's data buffer. */
    public void put(int tag, byte[] data) {
        memory.write(dataAddress(tag), MemorySegment.ofArray(data));
    }

    /** The tag's data buffer as bytes. */
    public byte[] get(int tag, int bytes) {
        byte[] b = new byte[bytes];
        memory.read(dataAddress(tag), MemorySegment.ofArray(b));
        return b;
    }

    public VhostUserFrontend frontend() {
        return fe;
    }

    @Override
    public void close() {
        fe.close();
        kick.close();
        call.close();
        memory.release();
    }
}
