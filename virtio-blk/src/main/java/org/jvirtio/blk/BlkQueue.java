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
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueIo;
import org.jvirtio.api.QueueStats;
import org.jvirtio.api.RateLimitedLog;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.blk.VirtioBlk.*;

/**
 * The virtio-blk protocol of one request queue (VIRTIO 1.3, 5.2.6), as a {@link QueueHandler}:
 * parses each chain through the chain cursor (any descriptor layout works), turns it into
 * {@link BlockQueueIo} operations on guest memory in place, and on completion writes the status
 * byte and reports the chain done. The framework's queue engine does the rest (popping,
 * batching submits and publishes, interrupts, polling, the serve budget, draining on stop).
 *
 * <p>Guest mistakes become a status, never an exception: a sector range past the capacity or
 * overflowing, a length that is not a multiple of 512, a write to a read-only disk answer IOERR;
 * unknown types answer UNSUPP; a chain without room for the status byte is returned with nothing
 * written.
 *
 * <p>Called only from the thread that owns the queue (no locks on the data path).
 */
public final class BlkQueue implements QueueHandler {
    private static final Logger LOG = LoggerFactory.getLogger(BlkQueue.class);
    /** Per guest mistake: a hostile driver decides how often these happen. */
    static final RateLimitedLog GUEST_MISTAKES = RateLimitedLog.perSecond(LOG);

    private final VirtioBlkDevice device;
    private final QueueBinding binding;
    private final BlockBackend backend;
    private final BlkIoFactory factory;
    /** The queue's counters: the engine counts requests and what is in flight, this adds bytes and errors. */
    private final QueueStats stats;
    private final byte[] id;
    private final Arena arena = Arena.ofShared();
    /** One per slot the engine can hand out: indexed by slot. */
    private final BlockRequest[] requests;
    private final long[] ranges = new long[3 * Math.max(VirtioBlkDevice.MAX_DISCARD_SEG, VirtioBlkDevice.MAX_WRITE_ZEROES_SEG)];
    private QueueCompletions completions;
    private BlockQueueIo io;

    BlkQueue(VirtioBlkDevice device, QueueBinding binding, BlockBackend backend, BlkIoFactory factory, String serial) {
        this.device = device;
        this.binding = binding;
        this.backend = backend;
        this.factory = factory;
        this.stats = binding.stats();
        this.id = serial.getBytes(StandardCharsets.US_ASCII);
        int n = binding.queue().size();
        this.requests = new BlockRequest[n];
        for (int i = 0; i < n; i++) {
            requests[i] = new BlockRequest(this, i, arena);
        }
    }

    public int index() {
        return binding.index();
    }

    /** Opens the backend channel; on the owning thread, before anything else. */
    @Override
    public void open(QueueCompletions completions) throws IOException {
        this.completions = completions;
        io = factory.open(backend, requests.length);
    }

    /** The backend channel: the engine submits, watches and reaps it. */
    @Override
    public QueueIo io() {
        return io;
    }

    /** Releases the channel and the request slots; called with nothing in flight (the engine's count). */
    @Override
    public void close() {
        if (io != null) {
            io.close();
        }
        for (BlockRequest r : requests) {
            r.release();
        }
        arena.close();
    }

    // ---- one request ----

    @Override
    public int start(DescriptorChain c, int slot) {
        long writable = c.writableLength();
        long readable = c.readableLength();
        if (writable < 1) {
            stats.addError(QueueStats.ErrorKind.MALFORMED);
            GUEST_MISTAKES.warn("virtio-blk: request (head {}) has no device-writable status byte; returned unanswered", c.head());
            return 0;
        }
        BlockRequest r = requests[slot];
        r.chain = c;
        r.pending = 1;
        r.status = S_OK;
        // The used length is the chain's whole writable length, whatever the outcome (QEMU's
        // in_len): the status byte is its last byte, so a dirty log marking the used length
        // covers it, and data the I/O may have written before failing, too.
        r.written = (int) Math.min(writable, Integer.MAX_VALUE);
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
            } catch (RuntimeException | InternalError e) {
                // InternalError: guest memory faulted (its file shrank under the mapping). The
                // request still completes, so its slot is not stranded.
                GUEST_MISTAKES.warn("virtio-blk: request (head {}) failed: {}", c.head(), e.toString());
                r.status = S_IOERR;
            }
        }
        if (--r.pending == 0) {
            finish(r);
        }
        return PENDING;
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
        try {
            r.statusRegion.set(ValueLayout.JAVA_BYTE, r.statusOffset, (byte) status);
        } catch (InternalError e) {
            // The status byte's memory faulted: the chain still goes back (the ring, faulting too,
            // will break), and the slot is freed.
            status = S_IOERR;
        }
        if (status == S_OK) {
            if (r.type == T_IN || r.type == T_OUT) {
                stats.addBytes(r.length, r.type == T_IN);
            }
        } else {
            stats.addError(status == S_UNSUPP ? QueueStats.ErrorKind.UNSUPPORTED : QueueStats.ErrorKind.IO);
        }
        r.release();
        completions.complete(r.tag(), r.written);
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
