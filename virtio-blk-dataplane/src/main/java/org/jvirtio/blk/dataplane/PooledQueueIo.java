package org.jvirtio.blk.dataplane;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.BlockQueueIo;
import org.jvirtio.blk.BlockRequest;
import org.jvirtio.blk.InlineQueueIo;
import org.jvirtio.api.linux.Errno;

/**
 * The fallback where io_uring is not allowed: each operation runs as a synchronous
 * pread/pwrite/fdatasync/fallocate on a shared thread pool (qemu-storage-daemon's aio=threads),
 * so a slow disk does not stall the I/O thread. Results come back through a queue and an eventfd
 * in the I/O thread's event loop, and requests are completed there, on the queue's own thread.
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

    PooledQueueIo(BlockBackend backend, Executor pool) throws ErrnoException {
        this.sync = new InlineQueueIo(backend);
        this.pool = pool;
        this.eventFd = EventFd.create(true);
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
        run(r, () -> sync.readNow(r));
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
