package org.jvirtio.blk.dataplane;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.RateLimitedLog;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.blk.BlockQueueIo;
import org.jvirtio.blk.BlockRequest;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.FileCalls;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.api.linux.Errno.*;

/**
 * A queue's disk I/O through its own io_uring: READV/WRITEV with iovecs pointing straight into
 * guest memory, FSYNC (datasync) for FLUSH, RWF_DSYNC writes in writethrough mode, FALLOCATE for
 * DISCARD and WRITE_ZEROES, the image as a registered file, buffered writes (no O_DIRECT, not
 * writethrough) copied into the page cache right on the I/O thread with pwritev (io_uring would
 * hand each to an io-wq worker, one at a time per file: half the IOPS at depth 1), reads of an
 * image on a memory-backed file system (tmpfs) copied right on the I/O thread with preadv2 for
 * the same reason (io_uring hands every read of such a file to io-wq: two context switches per
 * read), buffered reads of other images tried on the I/O thread with RWF_NOWAIT first (a page-cache
 * hit is a copy; a miss goes on through io_uring, as do the next 64 reads), and an eventfd for completions in
 * the I/O thread's event loop. Completions posted during {@link #submit()} are reaped right
 * there (the eventfd then wakes the loop once more and finds nothing).
 *
 * <p>Short transfers are resumed where they stopped (a read that hits the end of a shrunken
 * image reads zeros from there, like the synchronous path); -EAGAIN and -EINTR are retried;
 * other errors complete the operation with {@code -errno}.
 */
final class UringQueueIo implements BlockQueueIo {
    private static final Logger LOG = LoggerFactory.getLogger(UringQueueIo.class);
    /** Failed transfers: a guest can ask for failing ones (past a shrunken image, say) as often as it likes. */
    private static final RateLimitedLog IO_FAILURES = RateLimitedLog.perSecond(LOG);
    private static final int IOV_MAX = 1024;

    /** After a read that missed the page cache, this many go to io_uring without trying RWF_NOWAIT. */
    private static final int NOWAIT_BACKOFF = 64;

    private static final int K_READ = 1;
    private static final int K_WRITE = 2;
    private static final int K_WRITE_DSYNC = 3;
    private static final int K_FSYNC = 4;
    private static final int K_FALLOC = 5;

    private final IoUring ring;
    private final boolean inlineBufferedWrites;
    /** The preadv2 flags of reads done on the I/O thread ({@link FileBackend#inlineReadFlags}), or -1: all through io_uring. */
    private final int inlineFlags;
    /** Reads left to send straight to io_uring after one missed the page cache (RWF_NOWAIT). */
    private int nowaitBackoff;
    private final EventFd eventFd;
    private final FileBackend file;
    private final BlockRequest[] byTag;
    /** Per tag: bytes of the current read or write done so far (a short transfer resumes there). */
    private final long[] done;
    /** Per tag: operations queued and not finished, and the next deallocation slot. */
    private final int[] ops;
    /** Each deallocation's range and mode, kept so that an -EAGAIN can be retried. */
    private final DeallocRanges dealloc;
    /** Tests only: rewrites each completion's result (see {@link #filterResults}). */
    private java.util.function.IntUnaryOperator filter;
    private final IoUring.Completions sink = (userData, res) -> completed(userData, this.filter == null ? res : this.filter.applyAsInt(res));
    private int pending;
    private boolean zeroRangeUnsupported;
    /** Reads answered inline (tests and diagnostics). */
    private long readsInline;

    /**
     * @param inlineBufferedWrites copy buffered writes into the page cache on the I/O thread (pwritev) instead of via io-wq
     * @param inlineReads          read on the I/O thread what cannot wait ({@link FileBackend#inlineReadFlags}) instead of via io_uring
     */
    UringQueueIo(FileBackend file, int depth, boolean inlineBufferedWrites, boolean inlineReads) throws ErrnoException {
        this.file = file;
        this.inlineBufferedWrites = inlineBufferedWrites;
        this.inlineFlags = inlineReads ? file.inlineReadFlags() : -1;
        this.ring = IoUring.create(Math.max(depth, 8));
        try {
            ring.probe();
            ring.registerFiles(file.fd());
            this.eventFd = EventFd.create(true);
            try {
                ring.registerEventFd(eventFd.fd());
            } catch (ErrnoException e) {
                eventFd.close();
                throw e;
            }
        } catch (ErrnoException | RuntimeException e) {
            ring.close();
            throw e;
        }
        this.byTag = new BlockRequest[depth];
        this.done = new long[depth];
        this.ops = new int[depth];
        this.dealloc = new DeallocRanges(depth);
    }

    /**
     * Tests only: every result the kernel posts passes through {@code f} first, to provoke what
     * these kernels rarely do on their own: -EAGAIN, -EINTR and short transfers (a result smaller
     * than asked for; the bytes the kernel really moved are moved again, which is harmless).
     */
    void filterResults(java.util.function.IntUnaryOperator f) {
        this.filter = f;
    }

    private static long userData(BlockRequest r, int kind, int index) {
        return (long) r.tag() | ((long) kind << 32) | ((long) index << 40);
    }

    /** A free submission entry, submitting what is queued when the ring is full. */
    private long sqe() {
        long s = ring.nextSqe();
        while (s < 0) {
            submit();
            s = ring.nextSqe();
            if (s < 0) {
                // The kernel took nothing (completion side backed up): deliver completions first.
                reap();
                Thread.onSpinWait();
            }
        }
        return s;
    }

    @Override
    public void read(BlockRequest r) {
        track(r);
        done[r.tag()] = 0;
        if (inlineFlags == 0 || inlineFlags > 0 && nowaitBackoff == 0) {
            // tmpfs: no FMODE_NOWAIT, so io_uring would send this read to an io-wq worker and
            // back (two context switches for a copy); copied here instead, it cannot wait for a
            // device. Other buffered images: from the page cache or not at all (RWF_NOWAIT, EAGAIN
            // at once), a hit a copy here instead of a submission, a completion at submit and the
            // eventfd wake-up after it. A miss, a short read (the end of a shrunken image) or the
            // part past a partial hit goes on through io_uring (zeros past the end, or the error).
            MemorySegment iov = r.iovecs();
            long n = FileCalls.preadv2Raw(file.fd(), iov.address(), r.pieceCount(), r.offset(), inlineFlags);
            if (n == r.length()) {
                readsInline++;
                finish(r, n);
                return;
            }
            if (n > 0) {
                done[r.tag()] = n;
            } else if (inlineFlags > 0) {
                nowaitBackoff = NOWAIT_BACKOFF; // not cached: the next reads likely are not either
            }
        } else if (nowaitBackoff > 0) {
            nowaitBackoff--;
        }
        queueRw(r, K_READ);
    }

    /** Reads answered on the I/O thread without io_uring (memory-backed images). */
    long readsInline() {
        return readsInline;
    }

    @Override
    public void write(BlockRequest r, boolean dsync) {
        track(r);
        done[r.tag()] = 0;
        if (inlineBufferedWrites && !dsync && !file.direct()) {
            // A buffered write is a copy into the page cache. io_uring cannot do it without
            // blocking on most file systems, so it hands it to an io-wq worker, and io-wq runs
            // writes to one file one at a time: doing the copy right here is cheaper.
            MemorySegment iov = r.iovecs();
            long n = FileCalls.pwritevRaw(file.fd(), iov.address(), r.pieceCount(), r.offset());
            if (n == r.length()) {
                finish(r, n);
                return;
            }
            if (n > 0) {
                done[r.tag()] = n; // short: io_uring writes the rest
            }
        }
        queueRw(r, dsync ? K_WRITE_DSYNC : K_WRITE);
    }


    private void track(BlockRequest r) {
        byTag[r.tag()] = r;
        ops[r.tag()]++;
        pending++;
    }

    /** Queues the rest of a read or write: from {@code done[tag]} on. */
    private void queueRw(BlockRequest r, int kind) {
        MemorySegment iov = r.iovecs();
        int count = r.pieceCount();
        long resumeAt = done[r.tag()];
        if (resumeAt > 0) {
            // Resume after a short transfer: drop what is done, trim the first buffer.
            long skip = resumeAt;
            int i = 0;
            while (skip >= r.pieceLength(i)) {
                skip -= r.pieceLength(i);
                i++;
            }
            int k = 0;
            for (int j = i; j < count; j++, k++) {
                long base = r.pieceRegion(j).address() + r.pieceOffset(j);
                long len = r.pieceLength(j);
                if (j == i) {
                    base += skip;
                    len -= skip;
                }
                iov.set(ValueLayout.JAVA_LONG, 16L * k, base);
                iov.set(ValueLayout.JAVA_LONG, 16L * k + 8, len);
            }
            count = k;
        }
        if (count > IOV_MAX) {
            // More buffers than one readv takes (a guest ignoring seg_max): refuse, do not split
            // (and do not log: the guest chose it).
            pending--;
            ops[r.tag()]--;
            r.complete(-22);
            return;
        }
        long s = sqe();
        int op = kind == K_READ ? IoUring.OP_READV : IoUring.OP_WRITEV;
        int rwFlags = kind == K_WRITE_DSYNC ? Libc.RWF_DSYNC : 0;
        ring.prep(s, op, IoUring.IOSQE_FIXED_FILE, 0, r.offset() + resumeAt, iov.address(), count, rwFlags,
                userData(r, kind, 0));
    }

    @Override
    public void flush(BlockRequest r) {
        track(r);
        queueFsync(r);
    }

    private void queueFsync(BlockRequest r) {
        long s = sqe();
        ring.prep(s, IoUring.OP_FSYNC, IoUring.IOSQE_FIXED_FILE, 0, 0, 0, 0, IoUring.FSYNC_DATASYNC, userData(r, K_FSYNC, 0));
    }

    @Override
    public void deallocate(BlockRequest r, long offset, long length, int mode) {
        int i = dealloc.add(r.tag(), ops[r.tag()] == 0, offset, length, mode);
        if (i < 0) {
            r.complete(-EINVAL); // more ranges than the device ever allows in one request
            return;
        }
        track(r);
        queueFallocate(r, i);
    }

    private int fallocMode(int mode) {
        return switch (mode) {
            case DEALLOC_ZERO -> zeroRangeUnsupported ? -1 : Libc.FALLOC_FL_ZERO_RANGE | Libc.FALLOC_FL_KEEP_SIZE;
            default -> Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE; // discard, and zeroing that may unmap
        };
    }

    private void queueFallocate(BlockRequest r, int i) {
        int tag = r.tag();
        int mode = fallocMode(dealloc.mode(tag, i));
        if (mode < 0) {
            // This file system cannot zero a range: write zeros synchronously (rare; correct).
            pending--;
            r.complete(zeroSlowly(dealloc.offset(tag, i), dealloc.length(tag, i)));
            return;
        }
        long s = sqe();
        // IORING_OP_FALLOCATE: off = offset, addr = length, len = mode
        ring.prep(s, IoUring.OP_FALLOCATE, IoUring.IOSQE_FIXED_FILE, 0, dealloc.offset(tag, i), dealloc.length(tag, i), mode, 0,
                userData(r, K_FALLOC, i));
    }

    private long zeroSlowly(long offset, long length) {
        try {
            file.writeZeroes(offset, length, false);
            return 0;
        } catch (java.io.IOException e) {
            LOG.warn("virtio-blk: write-zeroes at byte {} failed: {}", offset, e.getMessage());
            return e instanceof ErrnoException ee ? -ee.errno() : -EIO;
        }
    }

    @Override
    public void submit() {
        try {
            ring.submit();
        } catch (ErrnoException e) {
            if (e.errno() != EAGAIN && e.errno() != EBUSY) {
                LOG.error("io_uring_enter failed: {}", e.getMessage());
            }
            // What was not consumed stays queued; completions will make room.
        }
        // Completions posted during the submission (page-cache hits) need no wake-up.
        reap();
    }

    @Override
    public int completionFd() {
        return eventFd.fd();
    }

    @Override
    public int reap() {
        int n = ring.reap(sink);
        // Completions may have queued retries (short transfers, -EAGAIN). Submit them, and reap
        // again what completed during that submit.
        while (ring.sqReady() > 0) {
            try {
                ring.submit();
            } catch (ErrnoException e) {
                LOG.debug("io_uring_enter: {}", e.getMessage());
                break;
            }
            int more = ring.reap(sink);
            if (more == 0) {
                break;
            }
            n += more;
        }
        return n;
    }

    @Override
    public int pending() {
        return pending;
    }

    private void completed(long userData, int res) {
        int tag = (int) userData;
        int kind = (int) (userData >>> 32) & 0xff;
        int index = (int) (userData >>> 40);
        BlockRequest r = byTag[tag];
        if (res == -EAGAIN || res == -EINTR) {
            retry(r, kind, index);
            return;
        }
        switch (kind) {
            case K_READ, K_WRITE, K_WRITE_DSYNC -> {
                if (res < 0 && file.isAlignmentRefusal(res)) {
                    finish(r, bounce(r, kind));
                    return;
                }
                if (res < 0) {
                    finish(r, res);
                    return;
                }
                if (res == 0) {
                    if (kind != K_READ) {
                        finish(r, -EIO);
                        return;
                    }
                    // End of a shrunken image: the rest reads as zeros.
                    r.zeroFrom(done[tag]);
                    finish(r, r.length());
                    return;
                }
                done[tag] += res;
                if (done[tag] < r.length()) {
                    queueRw(r, kind);
                } else {
                    finish(r, r.length());
                }
            }
            case K_FALLOC -> {
                if (res == -EOPNOTSUPP || res == -EINVAL) {
                    int mode = dealloc.mode(tag, index);
                    if (mode == DEALLOC_ZERO) {
                        zeroRangeUnsupported = true;
                        finish(r, zeroSlowly(dealloc.offset(tag, index), dealloc.length(tag, index)));
                        return;
                    }
                    if (mode == DEALLOC_DISCARD) {
                        // A discard is a hint ("may deallocate"): a file system that cannot punch
                        // holes has done what was asked.
                        finish(r, 0);
                        return;
                    }
                }
                finish(r, res);
            }
            default -> finish(r, res);
        }
    }

    /** O_DIRECT refused the guest's unaligned buffers: the whole request, synchronously, via an aligned copy. */
    private long bounce(BlockRequest r, int kind) {
        try {
            file.bounce(r, kind != K_READ);
            if (kind == K_WRITE_DSYNC) {
                file.flush();
            }
            return r.length();
        } catch (java.io.IOException e) {
            LOG.warn("virtio-blk: bounced I/O at byte {} failed: {}", r.offset(), e.getMessage());
            return e instanceof ErrnoException ee ? -ee.errno() : -EIO;
        }
    }

    private void retry(BlockRequest r, int kind, int index) {
        switch (kind) {
            case K_READ, K_WRITE, K_WRITE_DSYNC -> queueRw(r, kind);
            case K_FSYNC -> queueFsync(r);
            default -> queueFallocate(r, index);
        }
    }

    private void finish(BlockRequest r, long result) {
        pending--;
        ops[r.tag()]--;
        if (result < 0) {
            IO_FAILURES.warn("virtio-blk: I/O at byte {} failed: {}", r.offset(), Libc.strerror((int) -result));
        }
        r.complete(result);
    }

    @Override
    public void close() {
        while (pending > 0) {
            // Should not happen (the queue stops only when nothing is pending); never free guest
            // memory the kernel may still write.
            try {
                ring.awaitCompletions(1);
            } catch (ErrnoException e) {
                break;
            }
            ring.reap(sink);
        }
        ring.close();
        eventFd.close();
    }

    @Override
    public String toString() {
        return "io_uring(fd " + ring.fd() + ", " + ring.entries() + " entries)";
    }
}
