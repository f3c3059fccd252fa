package org.jvirtio.blk;

import java.io.IOException;

import org.jvirtio.api.RateLimitedLog;
import org.jvirtio.api.linux.ErrnoException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.api.linux.Errno.EIO;

/**
 * Runs each operation with the backend's synchronous methods and completes it before returning:
 * right for memory backends. The {@code *Now} methods do the work and return the result without
 * completing, for channels that run them on other threads (a thread pool).
 */
public final class InlineQueueIo implements BlockQueueIo {
    private static final Logger LOG = LoggerFactory.getLogger(InlineQueueIo.class);
    private static final RateLimitedLog FAILURES = RateLimitedLog.perSecond(LOG);

    private final BlockBackend backend;

    public InlineQueueIo(BlockBackend backend) {
        this.backend = backend;
    }

    private static long failure(BlockRequest r, String what, Exception e) {
        FAILURES.warn("virtio-blk: {} at byte {} failed: {}", what, r.offset(), e.getMessage());
        return e instanceof ErrnoException ee ? -ee.errno() : -EIO;
    }

    @Override
    public void read(BlockRequest r) {
        r.complete(readNow(r));
    }

    @Override
    public void write(BlockRequest r, boolean dsync) {
        r.complete(writeNow(r, dsync));
    }

    @Override
    public void flush(BlockRequest r) {
        r.complete(flushNow(r));
    }

    @Override
    public void deallocate(BlockRequest r, long offset, long length, int mode) {
        r.complete(deallocateNow(r, offset, length, mode));
    }

    /** Reads every piece of {@code r}; returns its length or {@code -errno}. */
    public long readNow(BlockRequest r) {
        return transfer(r, false);
    }

    /** Writes every piece of {@code r}, then flushes when {@code dsync}; returns its length or {@code -errno}. */
    public long writeNow(BlockRequest r, boolean dsync) {
        long res = transfer(r, true);
        if (res >= 0 && dsync) {
            long f = flushNow(r);
            if (f < 0) {
                res = f;
            }
        }
        return res;
    }

    /** fdatasync; returns 0 or {@code -errno}. */
    public long flushNow(BlockRequest r) {
        try {
            backend.flush();
            return 0;
        } catch (IOException | RuntimeException e) {
            return failure(r, "flush", e);
        }
    }

    /** One DISCARD or WRITE_ZEROES range; returns 0 or {@code -errno}. */
    public long deallocateNow(BlockRequest r, long offset, long length, int mode) {
        try {
            if (mode == DEALLOC_DISCARD) {
                backend.discard(offset, length);
            } else {
                backend.writeZeroes(offset, length, mode == DEALLOC_ZERO_UNMAP);
            }
            return 0;
        } catch (IOException | RuntimeException e) {
            return failure(r, mode == DEALLOC_DISCARD ? "discard" : "write-zeroes", e);
        }
    }

    /** Reads or writes every piece of {@code r}; returns its length or {@code -errno}. */
    private long transfer(BlockRequest r, boolean write) {
        try {
            long disk = r.offset();
            for (int i = 0; i < r.pieceCount(); i++) {
                if (write) {
                    backend.write(disk, r.pieceRegion(i), r.pieceOffset(i), r.pieceLength(i));
                } else {
                    backend.read(disk, r.pieceRegion(i), r.pieceOffset(i), r.pieceLength(i));
                }
                disk += r.pieceLength(i);
            }
            return r.length();
        } catch (ErrnoException e) {
            return bounced(r, write, e);
        } catch (IOException | RuntimeException e) {
            return failure(r, write ? "write" : "read", e);
        }
    }

    /** The backend may know a slower way that works (O_DIRECT and unaligned guest buffers: a bounce). */
    private long bounced(BlockRequest r, boolean write, ErrnoException e) {
        try {
            if (backend.retryTransfer(r, write, e.errno())) {
                return r.length();
            }
        } catch (IOException | RuntimeException e2) {
            return failure(r, write ? "write" : "read", e2);
        }
        return failure(r, write ? "write" : "read", e);
    }

    @Override
    public void submit() {
    }

    @Override
    public int completionFd() {
        return -1;
    }

    @Override
    public int reap() {
        return 0;
    }

    @Override
    public int pending() {
        return 0;
    }

    @Override
    public void close() {
    }
}
