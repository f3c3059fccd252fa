package org.jvirtio.blk.rbd;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicReferenceArray;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.blk.BlockQueueIo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The queue channels of one {@link RbdBackend} and the routing of the image's completions to
 * them: librbd signals every finished operation of an image on one eventfd, so with several
 * queues (or a queue replaced while its predecessor still waits for an OSD) someone collects them
 * and hands each to the channel whose slot its argument names ({@link RbdQueueIo#slotOf}).
 */
final class RbdChannels {
    private static final Logger LOG = LoggerFactory.getLogger(RbdChannels.class);

    private final RbdBackend backend;
    /** Several queues expected: every queue gets its completions from the collecting thread. */
    private final boolean routed;
    /**
     * Open queue channels by slot: changed under {@link #lock}, read without it by whoever routes
     * a completion (no lock per completion).
     */
    private final AtomicReferenceArray<RbdQueueIo> open = new AtomicReferenceArray<>(RbdBackend.MAX_QUEUES);
    private final Object lock = new Object();
    /** The channel that collects the image's completions on its own thread, or null (guarded by lock). */
    private RbdQueueIo direct;
    /** The collecting thread, or null (guarded by lock). */
    private Thread router;
    /** No channel opens any more (guarded by lock). */
    private boolean closed;
    /** The collecting thread ends. */
    private volatile boolean stopping;

    RbdChannels(RbdBackend backend, boolean routed) {
        this.backend = backend;
        this.routed = routed;
        if (routed) {
            synchronized (lock) {
                startRouter();
            }
        }
    }

    /**
     * A queue's channel. With one queue expected and none open, the channel collects the
     * image's completions itself (its completion fd is the image's eventfd). Otherwise it gets
     * an eventfd of its own and its completions are routed to it: by the collecting thread with
     * several queues; by the collecting channel when a single queue's new channel opens while
     * the one before still waits for operations (a queue abandoned at its drain limit while an
     * OSD does not answer), and by the collecting thread once that one closed.
     */
    BlockQueueIo open(int depth) throws IOException {
        synchronized (lock) {
            if (closed) {
                throw new IOException("RBD image " + backend.name() + " is closed");
            }
            int slot = -1;
            for (int i = 0; i < RbdBackend.MAX_QUEUES; i++) {
                if (open.get(i) == null) {
                    slot = i;
                    break;
                }
            }
            if (slot < 0) {
                throw new IOException("RBD image " + backend.name() + " serves " + RbdBackend.MAX_QUEUES + " queues already");
            }
            boolean alone = !routed && direct == null && router == null;
            for (int i = 0; i < RbdBackend.MAX_QUEUES; i++) {
                alone &= open.get(i) == null;
            }
            RbdQueueIo q;
            if (alone) {
                q = new RbdQueueIo(backend, slot, depth, null);
                direct = q;
            } else {
                q = new RbdQueueIo(backend, slot, depth, EventFd.create(true));
                if (direct == null) {
                    startRouter();
                }
                // else the collecting channel routes this one's completions until it closes;
                // then the collecting thread takes over (the two never read the eventfd at once)
            }
            open.set(slot, q);
            return q;
        }
    }

    /** Starts the collecting thread once (guarded by lock). */
    private void startRouter() {
        if (router == null && !closed) {
            router = Thread.ofPlatform().daemon().name("jvirtio-rbd-" + backend.name().image()).start(this::route);
        }
    }

    /** The queue gives its slot back (closed with nothing pending). */
    void closed(RbdQueueIo q) {
        synchronized (lock) {
            open.compareAndSet(q.slot(), q, null);
            if (direct == q) {
                direct = null;
                for (int i = 0; i < RbdBackend.MAX_QUEUES; i++) {
                    if (open.get(i) != null) {
                        startRouter(); // channels remain that the collecting channel served
                        break;
                    }
                }
            }
        }
    }

    /**
     * Hands a finished completion to the channel it belongs to (from the collecting thread, or
     * from the collecting channel when it finds another's). Returns false when no open channel
     * has its slot (cannot happen: a channel closes only with nothing pending).
     */
    boolean route(long completion, long arg) {
        RbdQueueIo q = open.get(RbdQueueIo.slotOf(arg)); // no lock per completion

        if (q == null) {
            LOG.error("RBD image {}: a completion for a closed queue", backend.name());
            Librbd.aioRelease(completion);
            return false;
        }
        q.deliver(completion);
        return true;
    }

    /** The collecting thread: waits for the image's eventfd and hands every finished completion to its queue. */
    private void route() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment comps = a.allocate(8L * RbdQueueIo.POLL_BATCH, 8);
            boolean first = true;
            while (!stopping) {
                if (!first) {
                    // (the first round polls at once: a collecting channel may have closed after
                    // reading the eventfd of completions it then left for this thread)
                    try {
                        backend.events().await(200);
                    } catch (ErrnoException e) {
                        LOG.error("RBD image {}: waiting for completions failed: {}", backend.name(), e.getMessage());
                        return;
                    }
                }
                first = false;
                backend.events().read();
                int n;
                do {
                    n = Librbd.pollIoEvents(backend.imageAddress(), comps.address(), RbdQueueIo.POLL_BATCH);
                    for (int i = 0; i < n; i++) {
                        long c = comps.getAtIndex(ValueLayout.JAVA_LONG, i);
                        route(c, Librbd.aioGetArg(c));
                    }
                } while (n == RbdQueueIo.POLL_BATCH);
            }
        }
    }

    /** Opens no channel any more; false when already closed. */
    boolean close() {
        synchronized (lock) {
            if (closed) {
                return false;
            }
            closed = true;
            return true;
        }
    }

    /** Ends the collecting thread, if one runs, and waits for it (after {@link #close}). */
    void stopRouter() {
        Thread collector;
        synchronized (lock) {
            collector = router;
        }
        stopping = true;
        if (collector != null) {
            backend.events().signal();
            RbdBackend.joinQuietly(collector);
        }
    }
}
