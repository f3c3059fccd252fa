package org.jvirtio.blk;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

import org.jvirtio.api.DescriptorChain;

/**
 * One virtio-blk request on its way through a {@link BlockQueueIo}: the disk range and the guest
 * memory holding its data, as pieces (a region segment, an offset, a length) and, on demand, as
 * a native {@code struct iovec} array pointing straight into guest memory (zero copy).
 *
 * <p>Objects are owned and reused by their queue, one per possible in-flight request (no
 * allocation per request); the guest memory stays mapped until the request completes, because
 * a queue is stopped only after everything in flight has completed.
 */
public final class BlockRequest {
    private static final long IOVEC = 16;

    private final BlkQueue owner;
    private final int tag;
    private final Arena arena;

    // set by the device when the request starts
    DescriptorChain chain;
    int type;
    long offset;
    long length;
    int pending;
    int status;
    int written;
    MemorySegment statusRegion;
    long statusOffset;

    private int pieces;
    private MemorySegment[] regions = new MemorySegment[4];
    private long[] offsets = new long[4];
    private long[] lengths = new long[4];
    private MemorySegment iov;
    private boolean iovBuilt;

    BlockRequest(BlkQueue owner, int tag, Arena arena) {
        this.owner = owner;
        this.tag = tag;
        this.arena = arena;
        this.iov = arena.allocate(IOVEC * 4, 8);
    }

    /** A small number unique among the requests in flight on this queue (for io_uring user_data). */
    public int tag() {
        return tag;
    }

    /** Disk offset in bytes. */
    public long offset() {
        return offset;
    }

    /** Bytes to transfer. */
    public long length() {
        return length;
    }

    public int pieceCount() {
        return pieces;
    }

    /** The whole guest memory region segment of piece {@code i}. */
    public MemorySegment pieceRegion(int i) {
        return regions[i];
    }

    public long pieceOffset(int i) {
        return offsets[i];
    }

    public long pieceLength(int i) {
        return lengths[i];
    }

    /**
     * The pieces as a native {@code struct iovec[pieceCount()]} (host addresses into guest
     * memory). Built on first use per request; the {@link BlockQueueIo} may modify it (to resume
     * a short transfer). Per-request state of its own an I/O engine keeps by {@link #tag()}.
     */
    public MemorySegment iovecs() {
        if (!iovBuilt) {
            for (int i = 0; i < pieces; i++) {
                iov.set(ValueLayout.JAVA_LONG, i * IOVEC, regions[i].address() + offsets[i]);
                iov.set(ValueLayout.JAVA_LONG, i * IOVEC + 8, lengths[i]);
            }
            iovBuilt = true;
        }
        return iov;
    }

    /**
     * Fills the request's buffers with zeros from byte {@code from} of the transfer on (a read
     * that met the end of a shrunken image: the rest reads as zeros).
     */
    public void zeroFrom(long from) {
        long skip = from;
        for (int i = 0; i < pieces; i++) {
            long len = lengths[i];
            if (skip >= len) {
                skip -= len;
                continue;
            }
            regions[i].asSlice(offsets[i] + skip, len - skip).fill((byte) 0);
            skip = 0;
        }
    }

    /** Reports the result of one operation: bytes transferred, 0, or {@code -errno}. */
    public void complete(long result) {
        owner.completed(this, result);
    }

    // ---- for BlkQueue ----

    void clearPieces() {
        pieces = 0;
        iovBuilt = false;
    }

    void addPiece(MemorySegment region, long off, long len) {
        if (pieces == regions.length) {
            int n = pieces * 2;
            regions = Arrays.copyOf(regions, n);
            offsets = Arrays.copyOf(offsets, n);
            lengths = Arrays.copyOf(lengths, n);
            // the old array stays in the queue's arena until the queue stops
            iov = arena.allocate(IOVEC * n, 8);
        }
        regions[pieces] = region;
        offsets[pieces] = off;
        lengths[pieces] = len;
        pieces++;
    }

    /** Drops references into guest memory once the request is done. */
    void release() {
        Arrays.fill(regions, 0, pieces, null);
        pieces = 0;
        chain = null;
        statusRegion = null;
    }
}
