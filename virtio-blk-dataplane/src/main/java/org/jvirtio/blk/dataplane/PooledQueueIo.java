package org.jvirtio.blk.dataplane;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.BlockQueueIo;
import org.jvirtio.blk.BlockRequest;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.FileCalls;
import org.jvirtio.blk.InlineQueueIo;
import org.jvirtio.api.linux.Errno;

/**
 * The fallback where io_uring is not allowed: each operation runs as a synchronous
 * pread/pwrite/fdatasync/fallocate on a shared thread pool (qemu-storage-daemon's aio=threads),
 * so a slow disk does not stall the I/O thread. Results come back through a queue and an eventfd
 * in the I/O thread's event loop, and requests are completed there, on the queue's own thread.
 * Reads that cannot wait are done right on the I/O thread instead, as {@link UringQueueIo} does
 * them: an image on tmpfs, and page-cache hits of a buffered image (RWF_NOWAIT); a miss or a short
 * read goes to the pool whole. (io_uring is refused in many containers: Docker's default seccomp
 * profile, for one; a read the page cache holds then costs no trip through the pool.)
 *
 * <p>Allocates a task per operation; this is the degraded path, not the data path.
 */
final class PooledQueueIo implements BlockQueueIo {
    private record Done(BlockRequest request, long result) {
    }

    private final InlineQueueIo sync;
    private final Executor pool;
    private final EventFd eventFd;
    private final ConcurrentLinkedQueue<Done> done = new ConcurrentLinkedQueue<>();
    private int pending;
    /** The image read on the I/O thread first, with {@link #inlineFlags} ({@link FileBackend#inlineReadFlags}), or -1. */
    private final int inlineFd;
    private final int inlineFlags;
    private long readsInline;

    /** @param inlineReads read on the I/O thread what cannot wait (see the class comment) */
    PooledQueueIo(BlockBackend backend, Executor pool, boolean inlineReads) throws ErrnoException {
        this.sync = new InlineQueueIo(backend);
        this.pool = pool;
        this.eventFd = EventFd.create(true);
        this.inlineFlags = inlineReads && backend instanceof FileBackend f ? f.inlineReadFlags() : -1;
        this.inlineFd = inlineFlags >= 0 ? ((FileBackend) backend).fd() : -1;
    }

    private void run(BlockRequest r, java.util.function.LongSupplier op) {
        pending++;
        pool.execute(() -> {
            long res;
            try {
                res = op.getAsLong();
            } catch (RuntimeException | Error e) {
                res = -Errno.EIO;
            }
            done.add(new Done(r, res));
            eventFd.signal();
        });
    }

    @Override
    public void read(BlockRequest r) {
        if (inlineFd >= 0) {
            long n = FileCalls.preadv2Raw(inlineFd, r.iovecs().address(), r.pieceCount(), r.offset(), inlineFlags);
            if (n == r.length()) {
                readsInline++;
                r.complete(n);
                return;
            }
        }
        run(r, () -> sync.readNow(r));
    }

    /** Reads answered on the I/O thread (tests and diagnostics). */
    long readsInline() {
        return readsInline;
    }

    @Override
    public void write(BlockRequest r, boolean dsync) {
        run(r, () -> sync.writeNow(r, dsync));
    }

    @Override
    public void flush(BlockRequest r) {
        run(r, () -> sync.flushNow(r));
    }

    @Override
    public void deallocate(BlockRequest r, long offset, long length, int mode) {
        run(r, () -> sync.deallocateNow(r, offset, length, mode));
    }

    @Override
    public void submit() {
        // every operation was handed to the pool when it was queued
    }

    @Override
    public int completionFd() {
        return eventFd.fd();
    }

    @Override
    public int reap() {
        int n = 0;
        Done d;
        while ((d = done.poll()) != null) {
            pending--;
            n++;
            d.request().complete(d.result());
        }
        return n;
    }

    @Override
    public int pending() {
        return pending;
    }

    @Override
    public void close() {
        // Never free guest memory a pool thread may still write: wait for the stragglers.
        while (pending > 0) {
            try {
                eventFd.await(100);
            } catch (ErrnoException e) {
                break;
            }
            reap();
        }
        eventFd.close();
    }

    @Override
    public String toString() {
        return "thread pool";
    }
}
