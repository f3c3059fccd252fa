package org.jvirtio.blk.rbd;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.RateLimitedLog;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.blk.BlockQueueIo;
import org.jvirtio.blk.BlockRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One queue's I/O on an RBD image: {@code rbd_aio_readv} / {@code rbd_aio_writev} with the
 * request's iovecs pointing straight into guest memory, {@code rbd_aio_flush},
 * {@code rbd_aio_discard} and {@code rbd_aio_write_zeroes}, each with a completion made without a
 * callback whose argument names the queue, the kind and the request's tag. librbd sends each
 * operation on from the calling thread at once ({@link #submit()} has nothing to do).
 *
 * <p>Completions come back on this queue's thread: with one queue, the image's eventfd is this
 * queue's completion fd and {@link #reap()} collects them with {@code rbd_poll_io_events};
 * with several, {@link RbdBackend}'s collecting thread puts each in this queue's mailbox
 * ({@link #deliver}) and signals the queue's own eventfd. Either way a completion found by the
 * wrong party goes through the mailbox of the channel whose slot its argument names. Nothing is allocated on the Java heap
 * per request (librbd allocates its completion object, as it does for every caller).
 *
 * <p>Results: a read answers the bytes it read, fewer past the end of a shrunken image (the rest
 * is filled with zeros, as for files); a write answers 0, reported as the whole length; errors
 * ({@code -ETIMEDOUT} when an OSD did not answer within the client's op timeout, {@code -EIO},
 * ...) complete the request with IOERR.
 */
final class RbdQueueIo implements BlockQueueIo {
    private static final Logger LOG = LoggerFactory.getLogger(RbdQueueIo.class);
    private static final RateLimitedLog IO_FAILURES = RateLimitedLog.perSecond(LOG);
    static final int POLL_BATCH = 64;

    private static final int K_READ = 1;
    private static final int K_WRITE = 2;
    private static final int K_OTHER = 3;

    private final RbdBackend backend;
    private final int slot;
    private final long image;
    private final EventFd own;
    private final BlockRequest[] byTag;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment completionOut;
    private final MemorySegment comps;
    private final Object boxLock = new Object();
    private long[] box = new long[64];
    private int boxCount;
    private long[] taken = new long[64];
    private int pending;
    private boolean closed;

    /** @param own the queue's eventfd when a collecting thread routes completions, null when it collects its own */
    RbdQueueIo(RbdBackend backend, int slot, int depth, EventFd own) {
        this.backend = backend;
        this.slot = slot;
        this.image = backend.imageAddress();
        this.own = own;
        this.byTag = new BlockRequest[depth];
        this.completionOut = arena.allocate(ValueLayout.JAVA_LONG);
        this.comps = arena.allocate(8L * POLL_BATCH, 8);
    }

    int slot() {
        return slot;
    }

    private static long arg(int slot, int kind, int tag) {
        return ((long) slot << 40) | ((long) kind << 32) | (tag & 0xffffffffL);
    }

    static int slotOf(long arg) {
        return (int) (arg >>> 40) & 0xff;
    }

    /** A completion for one operation of {@code r}, or 0 (and {@code r} completed with the error). */
    private long completion(BlockRequest r, int kind) {
        int rc = Librbd.aioCreateCompletion(arg(slot, kind, r.tag()), completionOut.address());
        if (rc < 0) {
            fail(r, rc);
            return 0;
        }
        byTag[r.tag()] = r;
        return completionOut.get(ValueLayout.JAVA_LONG, 0);
    }

    /** librbd answered the call itself: 0 (the operation runs) or -errno (it never started). */
    private void started(BlockRequest r, long c, int rc) {
        if (rc < 0) {
            Librbd.aioRelease(c);
            fail(r, rc);
            return;
        }
        pending++;
    }

    private void fail(BlockRequest r, long negErrno) {
        IO_FAILURES.warn("virtio-blk: RBD I/O at byte {} of {} failed: {}", r.offset(), backend.name(), Libc.strerror((int) -negErrno));
        r.complete(negErrno);
    }

    @Override
    public void read(BlockRequest r) {
        if (r.length() == 0) {
            r.complete(0);
            return;
        }
        long c = completion(r, K_READ);
        if (c != 0) {
            started(r, c, Librbd.aioReadv(image, r.iovecs().address(), r.pieceCount(), r.offset(), c));
        }
    }

    @Override
    public void write(BlockRequest r, boolean dsync) {
        // librbd's cache is off: a write is on the OSDs when it completes, dsync or not.
        if (r.length() == 0) {
            r.complete(0);
            return;
        }
        long c = completion(r, K_WRITE);
        if (c != 0) {
            started(r, c, Librbd.aioWritev(image, r.iovecs().address(), r.pieceCount(), r.offset(), c));
        }
    }

    @Override
    public void flush(BlockRequest r) {
        long c = completion(r, K_OTHER);
        if (c != 0) {
            started(r, c, Librbd.aioFlush(image, c));
        }
    }

    @Override
    public void deallocate(BlockRequest r, long offset, long length, int mode) {
        long c = completion(r, K_OTHER);
        if (c == 0) {
            return;
        }
        int rc = switch (mode) {
            case DEALLOC_DISCARD -> Librbd.aioDiscard(image, offset, length, c);
            case DEALLOC_ZERO_UNMAP -> Librbd.aioWriteZeroes(image, offset, length, c, 0);
            default -> Librbd.aioWriteZeroes(image, offset, length, c, Librbd.RBD_WRITE_ZEROES_FLAG_THICK_PROVISION);
        };
        started(r, c, rc);
    }

    @Override
    public void submit() {
        // every operation went to librbd when it was queued
    }

    @Override
    public int completionFd() {
        return own != null ? own.fd() : backend.events().fd();
    }

    @Override
    public int reap() {
        return own != null ? reapMailbox() : reapImage();
    }

    /**
     * The collecting channel: the image's completions, each finished here if it is this
     * channel's (with one queue, all are) or handed to its channel (a newer channel of the same
     * queue opened while this one waits for stragglers).
     */
    private int reapImage() {
        int total = 0;
        int n;
        do {
            n = Librbd.pollIoEvents(image, comps.address(), POLL_BATCH);
            if (n < 0) {
                LOG.error("rbd_poll_io_events on {}: {}", backend.name(), Libc.strerror(-n));
                return total;
            }
            for (int i = 0; i < n; i++) {
                long c = comps.getAtIndex(ValueLayout.JAVA_LONG, i);
                long arg = Librbd.aioGetArg(c);
                if (slotOf(arg) == slot) {
                    finished(c, arg);
                    total++;
                } else {
                    backend.channels().route(c, arg);
                }
            }
        } while (n == POLL_BATCH);
        return total;
    }

    /** What the collecting thread (or the collecting channel) put in this channel's mailbox. */
    private int reapMailbox() {
        long[] mine;
        int n;
        synchronized (boxLock) {
            mine = box;
            n = boxCount;
            box = taken;
            boxCount = 0;
            taken = mine;
        }
        for (int i = 0; i < n; i++) {
            finished(mine[i], Librbd.aioGetArg(mine[i]));
        }
        return n;
    }

    /** Another thread hands over one of this (routed) channel's completions: into the mailbox, and a wake-up. */
    void deliver(long c) {
        synchronized (boxLock) {
            if (boxCount == box.length) {
                box = java.util.Arrays.copyOf(box, box.length * 2);
            }
            box[boxCount++] = c;
        }
        own.signal();
    }

    private void finished(long c, long arg) {
        long ret = Librbd.aioGetReturnValue(c);
        Librbd.aioRelease(c);
        int kind = (int) (arg >>> 32) & 0xff;
        BlockRequest r = byTag[(int) arg];
        pending--;
        if (ret < 0) {
            fail(r, ret);
            return;
        }
        switch (kind) {
            case K_READ -> {
                if (ret < r.length()) {
                    r.zeroFrom(ret); // the end of a shrunken image: the rest reads as zeros
                }
                r.complete(r.length());
            }
            case K_WRITE -> r.complete(r.length());
            default -> r.complete(0);
        }
    }

    @Override
    public int pending() {
        return pending;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        // Never leave librbd writing into guest memory that is about to go: wait for stragglers
        // (the queue stops only when nothing is pending, so this is a safety net; an OSD that does
        // not answer makes an operation fail after the op timeout).
        EventFd fd = own != null ? own : backend.events();
        while (pending > 0) {
            try {
                fd.await(100);
            } catch (ErrnoException e) {
                break;
            }
            fd.read();
            reap();
        }
        backend.channels().closed(this);
        if (own != null) {
            own.close();
        }
        arena.close();
    }

    @Override
    public String toString() {
        return "librbd(" + backend.name() + (own != null ? ", queue slot " + slot : "") + ")";
    }
}
