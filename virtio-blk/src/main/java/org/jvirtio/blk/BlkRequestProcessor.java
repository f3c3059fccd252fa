package org.jvirtio.blk;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;

import org.jvirtio.api.ChainReader;
import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.ring.QueueWorker;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.blk.VirtioBlk.*;

/**
 * Parses and serves virtio-blk requests of one queue (VIRTIO 1.3, 5.2.6), reading the header
 * through the chain cursor so any descriptor layout works, and moving data between the backend
 * and guest memory without copying. Guest mistakes become a status, never an exception: a sector
 * range past the capacity or overflowing, a length that is not a multiple of 512, a write to a
 * read-only disk answer IOERR; unknown types answer UNSUPP; a chain without room for the status
 * byte is returned with nothing written.
 */
final class BlkRequestProcessor implements QueueWorker.ChainHandler {
    private static final Logger LOG = LoggerFactory.getLogger(BlkRequestProcessor.class);

    /** Something to do with one piece of guest memory at a device offset. */
    @FunctionalInterface
    private interface SegmentOp {
        void apply(long diskOffset, MemorySegment guest) throws IOException;
    }

    private final VirtioBlkDevice device;
    private final BlockBackend backend;
    final BlkQueueStats stats;
    private final byte[] id;
    /** Bound once: a method reference per request would allocate per request. */
    private final SegmentOp readOp;
    private final SegmentOp writeOp;

    BlkRequestProcessor(VirtioBlkDevice device, BlockBackend backend, BlkQueueStats stats, String serial) {
        this.device = device;
        this.backend = backend;
        this.stats = stats;
        this.id = serial.getBytes(StandardCharsets.US_ASCII);
        this.readOp = backend::read;
        this.writeOp = backend::write;
    }

    @Override
    public int handle(DescriptorChain c) {
        stats.requests++;
        long writable = c.writableLength();
        long readable = c.readableLength();
        if (writable < 1) {
            stats.errors++;
            LOG.warn("virtio-blk: request (head {}) has no device-writable status byte; returned unanswered", c.head());
            return 0;
        }
        long dataIn = writable - 1;
        long written = 0;
        int status;
        if (readable < HEADER_SIZE) {
            status = S_IOERR;
        } else {
            ChainReader r = c.reader();
            int type = (int) r.readU32();
            r.readU32();
            long sector = r.readU64();
            long dataOut = readable - HEADER_SIZE;
            try {
                switch (type) {
                    case T_IN -> {
                        status = checkRange(sector, dataIn);
                        if (status == S_OK) {
                            forEach(c, true, 0, dataIn, sector * SECTOR_SIZE, readOp);
                            written = dataIn;
                            stats.bytes += dataIn;
                        }
                    }
                    case T_OUT -> {
                        status = device.isReadOnly() ? S_IOERR : checkRange(sector, dataOut);
                        if (status == S_OK) {
                            forEach(c, false, HEADER_SIZE, dataOut, sector * SECTOR_SIZE, writeOp);
                            stats.bytes += dataOut;
                            if (device.writeThrough()) {
                                backend.flush();
                            }
                        }
                    }
                    case T_FLUSH -> {
                        backend.flush();
                        status = S_OK;
                    }
                    case T_GET_ID -> {
                        int n = (int) Math.min(ID_BYTES, dataIn);
                        ChainWriter w = c.writer();
                        for (int i = 0; i < n; i++) {
                            w.writeU8(i < id.length ? id[i] : 0);
                        }
                        written = n;
                        status = S_OK;
                    }
                    case T_DISCARD, T_WRITE_ZEROES -> status = discardOrZero(c, type, dataOut);
                    default -> status = S_UNSUPP;
                }
            } catch (IOException | RuntimeException e) {
                LOG.warn("virtio-blk: request type {} at sector {} failed: {}", type, sector, e.toString());
                status = S_IOERR;
            }
        }
        if (status != S_OK) {
            stats.errors++;
        }
        ChainWriter w = c.writer();
        w.skip(writable - 1);
        w.writeU8(status);
        return (int) (written + 1);
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

    private int discardOrZero(DescriptorChain c, int type, long dataOut) throws IOException {
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
        ChainReader r = c.reader();
        r.skip(HEADER_SIZE);
        long capacity = device.capacitySectors();
        // Validate every segment before acting on any.
        long[] ranges = new long[(int) segments * 3];
        for (int i = 0; i < segments; i++) {
            long sector = r.readU64();
            long num = r.readU32();
            long flags = r.readU32();
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
            long off = ranges[3 * i] * SECTOR_SIZE;
            long len = ranges[3 * i + 1] * SECTOR_SIZE;
            if (len == 0) {
                continue;
            }
            if (zero) {
                backend.writeZeroes(off, len, (ranges[3 * i + 2] & DWZ_F_UNMAP) != 0);
            } else {
                backend.discard(off, len);
            }
        }
        return S_OK;
    }

    /**
     * Applies {@code op} to each piece of guest memory holding bytes [from, from + len) of the
     * chain's readable (or writable) side, with the matching disk offset.
     */
    private static void forEach(DescriptorChain c, boolean writable, long from, long len, long diskOffset, SegmentOp op) throws IOException {
        int first = writable ? c.readableBufferCount() : 0;
        int end = writable ? c.bufferCount() : c.readableBufferCount();
        long skip = from;
        long left = len;
        long disk = diskOffset;
        for (int i = first; i < end && left > 0; i++) {
            long bl = Integer.toUnsignedLong(c.bufferLength(i));
            if (skip >= bl) {
                skip -= bl;
                continue;
            }
            long n = Math.min(bl - skip, left);
            op.apply(disk, c.bufferRegion(i).asSlice(c.bufferOffset(i) + skip, n));
            skip = 0;
            disk += n;
            left -= n;
        }
    }
}
