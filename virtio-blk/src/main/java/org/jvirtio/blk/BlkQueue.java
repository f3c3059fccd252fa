package org.jvirtio.blk;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

import org.jvirtio.api.ChainReader;
import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.blk.VirtioBlk.*;

/**
 * One virtio-blk request queue at work (VIRTIO 1.3, 5.2.6): pops chains, parses each through the
 * chain cursor (any descriptor layout works), turns it into {@link BlockQueueIo} operations on
 * guest memory in place, submits once per batch, and on completion writes the status byte and
 * returns the chain. Used elements are published in batches (every {@link #PUBLISH_EVERY}
 * completions and at the end of a drain), and the driver is interrupted only when the ring says
 * it wants it.
 *
 * <p>Guest mistakes become a status, never an exception: a sector range past the capacity or
 * overflowing, a length that is not a multiple of 512, a write to a read-only disk answer IOERR;
 * unknown types answer UNSUPP; a chain without room for the status byte is returned with nothing
 * written.
 *
 * <p>Not thread-safe by design: a {@link BlkQueueHost} calls everything from the one thread that
 * owns the queue (no locks on the data path). Optional adaptive busy polling: {@link #pollMicros}.
 */
public final class BlkQueue {
    private static final Logger LOG = LoggerFactory.getLogger(BlkQueue.class);
    /** Operations queued before the first submit of a long batch (keeps the disk busy early). */
    private static final int SUBMIT_EVERY = 32;
    private static final long MIN_POLL_NANOS = 1_000;
    private static final long INITIAL_POLL_NANOS = 4_000;
    /** How long one {@link #serve()} may keep its thread while work keeps coming. */
    static final long SERVE_BUDGET_NANOS = 2_000_000;

    private final VirtioBlkDevice device;
    private final QueueBinding binding;
    private final Virtqueue q;
    private final BlockBackend backend;
    private final BlkIoFactory factory;
    private final BlkQueueStats stats;
    private final byte[] id;
    private final Arena arena = Arena.ofShared();
    private final BlockRequest[] requests;
    private final int[] free;
    private int freeTop;
    private final long[] ranges = new long[3 * Math.max(VirtioBlkDevice.MAX_DISCARD_SEG, VirtioBlkDevice.MAX_WRITE_ZEROES_SEG)];
    private BlockQueueIo io;
    private boolean unpublished;
    private int unpublishedCount;
    /**
     * Used elements are published in batches of this many, not only at the end of a drain: the
     * driver can take the first completions and submit more while the rest are served (measured:
     * about 5x the IOPS of one publish per drain at queue depth 32 on the null device, see
     * docs/PERFORMANCE.md). Each publish is one release store and one fence, and at most one
     * call-eventfd write, only when EVENT_IDX says the driver wants it.
     */
    static final int PUBLISH_EVERY = 8;
    private long pollMaxNanos;
    private long pollNanos;
    /** When the current serve() must give its thread back. */
    private long budgetEnd;
    /** When the current wait for work began (0: not waiting, or polling off). */
    private long waitStart;
    /** Every request slot was in use when the ring still had chains: serve again on completion. */
    private boolean starved;
    private boolean quiescing;

    BlkQueue(VirtioBlkDevice device, QueueBinding binding, BlockBackend backend, BlkIoFactory factory, BlkQueueStats stats, String serial) {
        this.device = device;
        this.binding = binding;
        this.q = binding.queue();
        this.backend = backend;
        this.factory = factory;
        this.stats = stats;
        this.id = serial.getBytes(StandardCharsets.US_ASCII);
        int n = q.size();
        this.requests = new BlockRequest[n];
        this.free = new int[n];
        for (int i = 0; i < n; i++) {
            requests[i] = new BlockRequest(this, i, arena);
            free[i] = n - 1 - i;
        }
        this.freeTop = n;
    }

    public int index() {
        return binding.index();
    }

    public QueueBinding binding() {
        return binding;
    }

    /**
     * Busy-polls the avail ring (and pending completions) up to {@code micros} before the owner
     * goes to sleep; 0 turns polling off. Adaptive like QEMU's AioContext: the window grows
     * while waits stay within the maximum, and shrinks when even the maximum would not have
     * covered them.
     */
    public void pollMicros(long micros) {
        this.pollMaxNanos = micros * 1000;
        this.pollNanos = pollMaxNanos;
    }

    /** Opens the backend channel; call on the owning thread before anything else. */
    public void open() throws IOException {
        io = factory.open(backend, q.size());
    }

    /** The channel's completion eventfd (read it, then {@link #reapCompletions()}), or -1. */
    public int completionFd() {
        return io.completionFd();
    }

    /** Requests started and not yet returned to the driver. */
    public int inFlight() {
        return requests.length - freeTop;
    }

    /**
     * Serves what the driver made available, then re-enables notifications (re-checking the
     * ring, so no kick is lost). Busy-polls first when polling is on.
     *
     * <p>A queue kept busy by a fast driver would never let go of its thread; after
     * {@link #SERVE_BUDGET_NANOS} this returns true with notifications still off, and the host
     * must call again soon (after giving other queues and its own tasks a turn): vhost's
     * "weight" rule.
     *
     * @return true when it stopped with work left (call again), false when the queue is idle
     *         (or waiting for completions to free request slots)
     */
    public boolean serve() {
        long entered = System.nanoTime();
        budgetEnd = entered + SERVE_BUDGET_NANOS;
        if (pollMaxNanos > 0 && waitStart != 0) {
            adjustPolling(entered - waitStart);
            waitStart = 0;
        }
        while (true) {
            q.disableNotifications();
            int n = drain();
            if (freeTop == 0) {
                // Cannot take more until something completes; reapCompletions() comes back here.
                starved = true;
                return false;
            }
            long waitFrom = System.nanoTime();
            if (n > 0 && waitFrom - budgetEnd > 0) {
                return true;
            }
            if (pollNanos > 0 && spin()) {
                continue; // work arrived within the window: the sweet spot, nothing to adjust
            }
            if (!q.enableNotifications()) {
                waitStart = pollMaxNanos > 0 ? waitFrom : 0;
                return false;
            }
        }
    }

    /**
     * QEMU's rule (util/aio-posix.c): after a wait of {@code blockedNanos} (polling included)
     * that polling did not cover, poll longer if a window up to the maximum would have covered
     * it, shorter if even the maximum would not have.
     */
    private void adjustPolling(long blockedNanos) {
        if (blockedNanos <= pollNanos) {
            return;
        }
        if (blockedNanos > pollMaxNanos) {
            pollNanos = pollNanos / 2 < MIN_POLL_NANOS ? 0 : pollNanos / 2;
        } else if (pollNanos < pollMaxNanos) {
            pollNanos = Math.min(pollMaxNanos, pollNanos == 0 ? INITIAL_POLL_NANOS : 2 * pollNanos);
        }
    }

    /** Polls until work shows up (true) or the window ends (false). */
    private boolean spin() {
        long deadline = System.nanoTime() + pollNanos;
        do {
            if (io.pending() > 0) {
                reapCompletions();
            }
            if (drain() > 0) {
                return true;
            }
            Thread.onSpinWait();
        } while (System.nanoTime() - deadline < 0);
        return false;
    }

    /**
     * Takes no more requests from the ring (what is in flight still completes): the first step
     * of stopping. On the owning thread.
     */
    public void quiesce() {
        quiescing = true;
    }

    /**
     * Delivers ready completions and publishes what they returned; serves the ring again if it
     * was waiting for free request slots.
     *
     * @return like {@link #serve()}: true when work is left for another call
     */
    public boolean reapCompletions() {
        io.reap();
        publish();
        if (starved && freeTop > 0 && !quiescing) {
            starved = false;
            return serve();
        }
        return false;
    }

    /** Pops every available chain (as far as request slots allow), submits, publishes. */
    private int drain() {
        if (quiescing) {
            return 0;
        }
        int n = 0;
        DescriptorChain c;
        while (freeTop > 0 && (c = q.pop()) != null) {
            start(c);
            if (++n % SUBMIT_EVERY == 0) {
                io.submit();
            }
            if (unpublishedCount >= PUBLISH_EVERY) {
                publish();
            }
            if (n % PUBLISH_EVERY == 0 && System.nanoTime() - budgetEnd > 0) {
                break; // the serve budget is spent: serve() yields
            }
        }
        if (n > 0) {
            io.submit();
            publish();
        }
        return n;
    }

    private void publish() {
        if (unpublished) {
            unpublished = false;
            unpublishedCount = 0;
            if (q.publishUsed()) {
                binding.call().signal();
            }
        }
    }

    /** Releases the channel and the request slots; call with nothing in flight. */
    public void close() {
        if (inFlight() != 0) {
            throw new IllegalStateException("queue " + index() + " closed with " + inFlight() + " requests in flight");
        }
        if (io != null) {
            io.close();
        }
        for (BlockRequest r : requests) {
            r.release();
        }
        arena.close();
    }

    // ---- one request ----

    private void start(DescriptorChain c) {
        stats.addRequest();
        long writable = c.writableLength();
        long readable = c.readableLength();
        if (writable < 1) {
            stats.addError();
            LOG.warn("virtio-blk: request (head {}) has no device-writable status byte; returned unanswered", c.head());
            q.addUsed(c, 0);
            unpublished = true;
            return;
        }
        BlockRequest r = requests[free[--freeTop]];
        stats.inFlight(inFlight());
        r.chain = c;
        r.pending = 1;
        r.status = S_OK;
        r.written = 0;
        r.type = -1;
        r.length = 0;
        r.clearPieces();
        int last = c.bufferCount() - 1;
        while (c.bufferLength(last) == 0) {
            last--;
        }
        r.statusRegion = c.bufferRegion(last);
        r.statusOffset = c.bufferOffset(last) + Integer.toUnsignedLong(c.bufferLength(last)) - 1;
        if (readable < HEADER_SIZE) {
            r.status = S_IOERR;
        } else {
            try {
                parse(c, r, readable, writable - 1);
            } catch (RuntimeException e) {
                LOG.warn("virtio-blk: request (head {}) failed: {}", c.head(), e.toString());
                r.status = S_IOERR;
            }
        }
        if (--r.pending == 0) {
            finish(r);
        }
    }

    private void parse(DescriptorChain c, BlockRequest r, long readable, long dataIn) {
        ChainReader rd = c.reader();
        int type = (int) rd.readU32();
        rd.readU32();
        long sector = rd.readU64();
        long dataOut = readable - HEADER_SIZE;
        r.type = type;
        switch (type) {
            case T_IN -> {
                r.status = checkRange(sector, dataIn);
                if (r.status == S_OK && dataIn > 0) {
                    r.offset = sector * SECTOR_SIZE;
                    r.length = dataIn;
                    r.written = (int) dataIn;
                    pieces(c, r, true, 0, dataIn);
                    r.pending++;
                    io.read(r);
                }
            }
            case T_OUT -> {
                r.status = device.isReadOnly() ? S_IOERR : checkRange(sector, dataOut);
                if (r.status == S_OK && dataOut > 0) {
                    r.offset = sector * SECTOR_SIZE;
                    r.length = dataOut;
                    pieces(c, r, false, HEADER_SIZE, dataOut);
                    r.pending++;
                    io.write(r, device.writeThrough());
                }
            }
            case T_FLUSH -> {
                r.pending++;
                io.flush(r);
            }
            case T_GET_ID -> {
                int n = (int) Math.min(ID_BYTES, dataIn);
                ChainWriter w = c.writer();
                for (int i = 0; i < n; i++) {
                    w.writeU8(i < id.length ? id[i] : 0);
                }
                r.written = n;
            }
            case T_DISCARD, T_WRITE_ZEROES -> r.status = discardOrZero(c, r, type, dataOut);
            default -> r.status = S_UNSUPP;
        }
    }

    /** An operation of {@code r} ended with {@code result}: bytes, 0, or -errno. */
    void completed(BlockRequest r, long result) {
        if (result < 0 || ((r.type == T_IN || r.type == T_OUT) && result != r.length)) {
            if (r.status == S_OK) {
                r.status = S_IOERR;
            }
        }
        if (--r.pending == 0) {
            finish(r);
        }
    }

    private void finish(BlockRequest r) {
        int status = r.status;
        r.statusRegion.set(ValueLayout.JAVA_BYTE, r.statusOffset, (byte) status);
        if (status == S_OK) {
            if (r.type == T_IN || r.type == T_OUT) {
                stats.addBytes(r.length);
            }
        } else {
            stats.addError();
        }
        q.addUsed(r.chain, status == S_OK ? r.written + 1 : 1);
        unpublished = true;
        unpublishedCount++;
        r.release();
        free[freeTop++] = r.tag();
        stats.inFlight(inFlight());
    }

    /** S_OK when [sector, sector + len/512) lies inside the disk and len is whole sectors. */
    private int checkRange(long sector, long len) {
        if (len % SECTOR_SIZE != 0) {
            return S_IOERR;
        }
        long capacity = device.capacitySectors();
        long sectors = len / SECTOR_SIZE;
        if (Long.compareUnsigned(sector, capacity) > 0 || sectors > capacity - sector) {
            return S_IOERR;
        }
        return S_OK;
    }

    private int discardOrZero(DescriptorChain c, BlockRequest r, int type, long dataOut) {
        boolean zero = type == T_WRITE_ZEROES;
        if (!(zero ? device.writeZeroesOffered() : device.discardOffered())) {
            return S_UNSUPP;
        }
        if (device.isReadOnly()) {
            return S_IOERR;
        }
        if (dataOut == 0 || dataOut % DWZ_SEGMENT_SIZE != 0) {
            return S_IOERR;
        }
        long segments = dataOut / DWZ_SEGMENT_SIZE;
        if (segments > (zero ? VirtioBlkDevice.MAX_WRITE_ZEROES_SEG : VirtioBlkDevice.MAX_DISCARD_SEG)) {
            return S_IOERR;
        }
        long maxSectors = zero ? VirtioBlkDevice.MAX_WRITE_ZEROES_SECTORS : VirtioBlkDevice.MAX_DISCARD_SECTORS;
        ChainReader rd = c.reader();
        rd.skip(HEADER_SIZE);
        long capacity = device.capacitySectors();
        // Validate every segment before acting on any.
        for (int i = 0; i < segments; i++) {
            long sector = rd.readU64();
            long num = rd.readU32();
            long flags = rd.readU32();
            if ((flags & ~DWZ_F_UNMAP) != 0 || (!zero && flags != 0)) {
                return S_UNSUPP;
            }
            if (num > maxSectors || Long.compareUnsigned(sector, capacity) > 0 || num > capacity - sector) {
                return S_IOERR;
            }
            ranges[3 * i] = sector;
            ranges[3 * i + 1] = num;
            ranges[3 * i + 2] = flags;
        }
        for (int i = 0; i < segments; i++) {
            long len = ranges[3 * i + 1] * SECTOR_SIZE;
            if (len == 0) {
                continue;
            }
            int mode = !zero ? BlockQueueIo.DEALLOC_DISCARD
                    : (ranges[3 * i + 2] & DWZ_F_UNMAP) != 0 ? BlockQueueIo.DEALLOC_ZERO_UNMAP : BlockQueueIo.DEALLOC_ZERO;
            r.pending++;
            io.deallocate(r, ranges[3 * i] * SECTOR_SIZE, len, mode);
        }
        return S_OK;
    }

    /**
     * Records as pieces of {@code r} the guest memory holding bytes [from, from + len) of the
     * chain's writable (or readable) side.
     */
    private static void pieces(DescriptorChain c, BlockRequest r, boolean writable, long from, long len) {
        int first = writable ? c.readableBufferCount() : 0;
        int end = writable ? c.bufferCount() : c.readableBufferCount();
        long skip = from;
        long left = len;
        for (int i = first; i < end && left > 0; i++) {
            long bl = Integer.toUnsignedLong(c.bufferLength(i));
            if (skip >= bl) {
                skip -= bl;
                continue;
            }
            long n = Math.min(bl - skip, left);
            r.addPiece(c.bufferRegion(i), c.bufferOffset(i) + skip, n);
            skip = 0;
            left -= n;
        }
    }
}
