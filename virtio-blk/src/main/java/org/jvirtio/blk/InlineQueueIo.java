package org.jvirtio.blk;

import java.io.IOException;

import org.jvirtio.api.linux.ErrnoException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs each operation with the backend's synchronous methods and completes it before returning:
 * right for memory backends, and the fallback for files where io_uring is unavailable.
 */
public final class InlineQueueIo implements BlockQueueIo {
    private static final Logger LOG = LoggerFactory.getLogger(InlineQueueIo.class);
    private static final int EIO = 5;

    private final BlockBackend backend;

    public InlineQueueIo(BlockBackend backend) {
        this.backend = backend;
    }

    private static long failure(BlockRequest r, String what, Exception e) {
        LOG.warn("virtio-blk: {} at byte {} failed: {}", what, r.offset(), e.getMessage());
        return e instanceof ErrnoException ee ? -ee.errno() : -EIO;
    }

    @Override
    public void read(BlockRequest r) {
        r.complete(transfer(r, false));
    }

    @Override
    public void write(BlockRequest r, boolean dsync) {
        long res = transfer(r, true);
        if (res >= 0 && dsync) {
            try {
                backend.flush();
            } catch (IOException | RuntimeException e) {
                res = failure(r, "flush", e);
            }
        }
        r.complete(res);
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

    /** O_DIRECT refused unaligned guest buffers: once more through an aligned buffer. */
    private long bounced(BlockRequest r, boolean write, ErrnoException e) {
        if (backend instanceof FileBackend f && f.isAlignmentRefusal(-e.errno())) {
            try {
                f.bounce(r, write);
                return r.length();
            } catch (IOException | RuntimeException e2) {
                return failure(r, write ? "write" : "read", e2);
            }
        }
        return failure(r, write ? "write" : "read", e);
    }

    @Override
    public void flush(BlockRequest r) {
        long res = 0;
        try {
            backend.flush();
        } catch (IOException | RuntimeException e) {
            res = failure(r, "flush", e);
        }
        r.complete(res);
    }

    @Override
    public void deallocate(BlockRequest r, long offset, long length, int mode) {
        long res = 0;
        try {
            if (mode == DEALLOC_DISCARD) {
                backend.discard(offset, length);
            } else {
                backend.writeZeroes(offset, length, mode == DEALLOC_ZERO_UNMAP);
            }
        } catch (IOException | RuntimeException e) {
            res = failure(r, mode == DEALLOC_DISCARD ? "discard" : "write-zeroes", e);
        }
        r.complete(res);
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
