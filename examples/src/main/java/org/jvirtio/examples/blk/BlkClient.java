package org.jvirtio.examples.blk;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.transport.vhostuser.DriverQueue;
import org.jvirtio.transport.vhostuser.DriverSession;
import org.jvirtio.transport.vhostuser.VhostUserFrontend;
import org.jvirtio.transport.vhostuser.VhostUserProtocol;

/**
 * A user-space virtio-blk driver over vhost-user (the role libblkio plays): connects to any
 * vhost-user-blk backend (jvirtio's or qemu-storage-daemon's), shares memfd guest memory, sets
 * up one or more queues, and issues requests with up to {@code depth} in flight per queue. Each
 * queue is used by one thread at a time (the methods without a queue argument use queue 0).
 */
public final class BlkClient implements AutoCloseable {
    private static final int MAX_INDIRECT = 16;
    /** Guest memory for the rings and indirect tables of every queue, below the request slots. */
    private static final long RINGS_BYTES = 0x100000;
    public static final int MAX_QUEUES = 8;
    /** Most data buffers one request can be split into. */
    public static final int MAX_SEGMENTS = 64;
    private static final int SIZE = 256;

    /** Called for each completion: the request's tag, its status byte, and its latency. */
    @FunctionalInterface
    public interface Completion {
        void done(int tag, int status, long nanos);
    }

    /** One queue's driver state; touched only by the thread using that queue. */
    private final class Queue {
        final int index;
        final QueueDriver driver;
        final EventFd kick;
        final EventFd call;
        final long[] started = new long[SIZE];
        final long[] addrs = new long[MAX_SEGMENTS + 2];
        final int[] lens = new int[MAX_SEGMENTS + 2];
        Completion sink;
        final QueueDriver.UsedHandler handler = this::used;

        private void used(int head, long tag, int len) {
            long slot = slot(index, (int) tag);
            sink.done((int) tag, memory.readU8(slot + 16), System.nanoTime() - started[(int) tag]);
        }

        Queue(int index) throws IOException {
            this.index = index;
            DriverQueue q = session.queue(index, SIZE, MAX_INDIRECT);
            this.driver = q.ring();
            this.kick = q.kick();
            this.call = q.call();
        }
    }

    private final DriverSession session;
    private final VhostUserFrontend fe;
    private final GuestMemory memory;
    private final long slots;
    private final Queue[] queues;
    private final int depth;
    private final int maxBytes;
    private final long capacitySectors;
    private final long features;
    /** How long {@link #reap} polls the used ring before it waits for the interrupt, in ns (0: waits at once). */
    private volatile long pollNanos;

    /** One queue. @param maxBytes largest data transfer per request */
    public BlkClient(Path socket, int depth, int maxBytes) throws IOException {
        this(socket, depth, maxBytes, 1);
    }

    /**
     * @param depth    requests in flight per queue (1-128)
     * @param maxBytes largest data transfer per request
     * @param queues   queues to set up (1-8; the backend must offer as many)
     */
    public BlkClient(Path socket, int depth, int maxBytes, int queues) throws IOException {
        this(socket, depth, maxBytes, queues, false);
    }

    /**
     * @param inflight set up inflight tracking as QEMU does for vhost-user-blk (GET_INFLIGHT_FD,
     *                 SET_INFLIGHT_FD), so that the backend marks and clears every request
     */
    public BlkClient(Path socket, int depth, int maxBytes, int queues, boolean inflight) throws IOException {
        this(socket, depth, maxBytes, queues, inflight, false);
    }

    /**
     * @param packed take packed virtqueues (VIRTIO_F_RING_PACKED) where the backend offers them,
     *               as QEMU does with {@code packed=on}; split rings otherwise
     */
    public BlkClient(Path socket, int depth, int maxBytes, int queues, boolean inflight, boolean packed) throws IOException {
        if (depth < 1 || depth > 128) {
            throw new IllegalArgumentException("queue depth must be in [1, 128]: " + depth);
        }
        if (queues < 1 || queues > MAX_QUEUES) {
            throw new IllegalArgumentException("queues must be in [1, " + MAX_QUEUES + "]: " + queues);
        }
        this.depth = depth;
        this.maxBytes = maxBytes;
        this.session = DriverSession.connect(socket, RINGS_BYTES + (long) queues * depth * slotSize());
        this.fe = session.frontend();
        this.memory = session.memory();
        long wanted = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.EVENT_IDX, VirtioFeatures.INDIRECT_DESC,
                VirtioBlk.BLK_FLUSH, VirtioBlk.BLK_SEG_MAX, VirtioBlk.BLK_BLK_SIZE, VirtioBlk.BLK_DISCARD,
                VirtioBlk.BLK_WRITE_ZEROES, VirtioBlk.BLK_RO, VirtioBlk.BLK_MQ) | (packed ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0);
        this.features = fe.negotiate(wanted, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES);
        byte[] cfg = fe.getConfig(0, VirtioBlk.CONFIG_SIZE);
        ByteBuffer b = ByteBuffer.wrap(cfg).order(ByteOrder.LITTLE_ENDIAN);
        this.capacitySectors = b.getLong(VirtioBlk.CFG_CAPACITY);
        int offered = VirtioFeatures.has(features, VirtioBlk.BLK_MQ) ? b.getShort(VirtioBlk.CFG_NUM_QUEUES) & 0xffff : 1;
        if (queues > offered) {
            session.close();
            throw new IOException("the backend offers " + offered + " queue(s), not " + queues);
        }
        session.useFeatures(features);
        session.shareMemory();
        if (inflight) {
            VhostUserFrontend.InflightFd f = fe.getInflightFd(queues, SIZE);
            try {
                fe.setInflightFd(f);
            } finally {
                try {
                    org.jvirtio.api.linux.Libc.close(f.fd());
                } catch (org.jvirtio.api.linux.ErrnoException e) {
                    // the backend has its own copy
                }
            }
        }
        this.slots = session.allocate((long) queues * depth * slotSize(), 4096);
        this.queues = new Queue[queues];
        for (int q = 0; q < queues; q++) {
            this.queues[q] = new Queue(q);
        }
    }

    private int slotSize() {
        return 4096 + ((maxBytes + 4095) & ~4095);
    }

    private long slot(int q, int tag) {
        return slots + ((long) q * depth + tag) * slotSize();
    }

    public long capacitySectors() {
        return capacitySectors;
    }

    public long features() {
        return features;
    }

    public int queueCount() {
        return queues.length;
    }

    /** Guest memory of request slot {@code tag}'s data buffer on queue 0. */
    public long dataAddress(int tag) {
        return dataAddress(0, tag);
    }

    public long dataAddress(int q, int tag) {
        return slot(q, tag) + 4096;
    }

    public GuestMemory memory() {
        return memory;
    }

    /** {@link #submit(int, int, int, long, int, int)} on queue 0, data in one buffer. */
    public void submit(int tag, int type, long sector, int bytes) {
        submit(0, tag, type, sector, bytes, 1);
    }

    /**
     * Submits request {@code tag} (0 &lt;= tag &lt; depth; its slot must be free) on queue
     * {@code q}. Data is in the tag's slot ({@link #dataAddress}), handed to the device as
     * {@code segments} buffers of about equal size. Even tags use direct descriptors, odd tags
     * an indirect table where it fits.
     */
    public void submit(int q, int tag, int type, long sector, int bytes, int segments) {
        Queue qu = queues[q];
        long slot = slot(q, tag);
        memory.writeU32(slot, type);
        memory.writeU32(slot + 4, 0);
        memory.writeU64(slot + 8, sector);
        memory.writeU8(slot + 16, 0xff);
        long[] addrs = qu.addrs;
        int[] lens = qu.lens;
        addrs[0] = slot;
        lens[0] = VirtioBlk.HEADER_SIZE;
        int n = 1;
        int segs = bytes == 0 ? 0 : Math.max(1, Math.min(Math.min(segments, MAX_SEGMENTS), bytes));
        int per = segs == 0 ? 0 : bytes / segs;
        for (int i = 0; i < segs; i++) {
            addrs[n] = slot + 4096 + (long) i * per;
            lens[n] = i == segs - 1 ? bytes - i * per : per;
            n++;
        }
        addrs[n] = slot + 16;
        lens[n] = 1;
        n++;
        boolean out = type == VirtioBlk.T_OUT || type == VirtioBlk.T_DISCARD || type == VirtioBlk.T_WRITE_ZEROES;
        int readable = out ? n - 1 : 1;
        int head = (tag & 1) == 1 && n <= MAX_INDIRECT ? qu.driver.addIndirect(addrs, lens, n, readable, tag)
                : qu.driver.add(addrs, lens, n, readable, tag);
        if (head < 0) {
            throw new IllegalStateException("ring full");
        }
        qu.started[tag] = System.nanoTime();
    }

    /** Publishes submitted requests of queue 0 and kicks if the backend wants it. */
    public void flushSubmissions() {
        flushSubmissions(0);
    }

    public void flushSubmissions(int q) {
        Queue qu = queues[q];
        if (qu.driver.publish()) {
            qu.kick.signal();
        }
    }

    /** {@link #reap(int, Completion, int)} on queue 0. */
    public int reap(Completion c, int timeoutMillis) throws IOException {
        return reap(0, c, timeoutMillis);
    }

    /**
     * Polls the used ring up to {@code micros} before waiting for the interrupt, as a guest
     * kernel with (haltpoll-style) polling does; 0, the default, waits at once as a plain guest
     * does.
     */
    public void pollBeforeWaiting(long micros) {
        if (micros < 0) {
            throw new IllegalArgumentException("negative poll time: " + micros);
        }
        this.pollNanos = micros * 1000;
    }

    /**
     * Waits (up to {@code timeoutMillis}) for at least one completion on queue {@code q} and
     * reports all that are there.
     *
     * @return completions reported
     */
    public int reap(int q, Completion c, int timeoutMillis) throws IOException {
        Queue qu = queues[q];
        qu.sink = c;
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        long poll = pollNanos;
        while (true) {
            int n = qu.driver.pollUsed(qu.handler);
            if (n > 0) {
                return n;
            }
            if (poll > 0 && (n = pollFor(qu, poll)) > 0) {
                return n;
            }
            if (qu.driver.enableInterrupts()) {
                qu.driver.disableInterrupts();
                continue;
            }
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                throw new IOException("no completion within " + timeoutMillis + " ms on queue " + q + " ("
                        + qu.driver.inFlight() + " in flight)");
            }
            qu.call.await((int) Math.min(left, Integer.MAX_VALUE));
            qu.driver.disableInterrupts();
        }
    }

    private static int pollFor(Queue qu, long nanos) {
        long end = System.nanoTime() + nanos;
        do {
            int n = qu.driver.pollUsed(qu.handler);
            if (n > 0) {
                return n;
            }
            Thread.onSpinWait();
        } while (System.nanoTime() - end < 0);
        return 0;
    }

    public int depth() {
        return depth;
    }

    /** Copies {@code data} into the tag's data buffer (queue 0). */
    public void put(int tag, byte[] data) {
        put(0, tag, data);
    }

    public void put(int q, int tag, byte[] data) {
        memory.write(dataAddress(q, tag), MemorySegment.ofArray(data));
    }

    /** The tag's data buffer as bytes (queue 0). */
    public byte[] get(int tag, int bytes) {
        return get(0, tag, bytes);
    }

    public byte[] get(int q, int tag, int bytes) {
        byte[] b = new byte[bytes];
        memory.read(dataAddress(q, tag), MemorySegment.ofArray(b));
        return b;
    }

    public VhostUserFrontend frontend() {
        return fe;
    }

    @Override
    public void close() {
        session.close();
    }
}
