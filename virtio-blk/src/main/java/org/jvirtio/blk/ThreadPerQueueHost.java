package org.jvirtio.blk;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The simple {@link BlkQueueHost}: a thread per queue waiting in poll(2) on a stop eventfd, the
 * kick eventfd and the completion eventfd. A queue without a kick eventfd (vhost-user NOFD) is
 * polled every millisecond.
 */
final class ThreadPerQueueHost implements BlkQueueHost.Started {
    private static final Logger LOG = LoggerFactory.getLogger(ThreadPerQueueHost.class);
    private static final int POLL_MILLIS = 1;

    private final BlkQueue queue;
    private final EventFd stopFd;
    private final Thread thread;
    private volatile boolean stopping;

    private ThreadPerQueueHost(BlkQueue queue) throws ErrnoException {
        this.queue = queue;
        this.stopFd = EventFd.create(true);
        this.thread = Thread.ofPlatform().name("virtio-blk-q" + queue.index()).daemon().unstarted(this::run);
    }

    static BlkQueueHost.Started start(BlkQueue queue) {
        try {
            ThreadPerQueueHost h = new ThreadPerQueueHost(queue);
            h.thread.start();
            return h;
        } catch (ErrnoException e) {
            throw new IllegalStateException("cannot start queue " + queue.index() + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void stop() {
        stopping = true;
        org.jvirtio.ring.QueueWorker.stopAndJoin(thread, stopFd);
    }

    /** The thread serves one queue only: it calls again at once when serve yields, unless stopping. */
    private void serveFully() {
        while (queue.serve() && !stopping) {
            // yielded with work left
        }
    }

    private void run() {
        EventFd kick = queue.binding().kick();
        try (Arena arena = Arena.ofConfined()) {
            queue.open();
            int completion = queue.completionFd();
            MemorySegment fds = arena.allocate(24, 8);
            MemorySegment counter = arena.allocate(8, 8);
            fds.set(ValueLayout.JAVA_INT, 0, stopFd.fd());
            fds.set(ValueLayout.JAVA_INT, 8, completion);
            fds.set(ValueLayout.JAVA_INT, 16, kick != null ? kick.fd() : -1);
            for (int i = 0; i < 3; i++) {
                fds.set(ValueLayout.JAVA_SHORT, 8L * i + 4, (short) Libc.POLLIN);
            }
            serveFully();
            while (!stopping) {
                for (int i = 0; i < 3; i++) {
                    fds.set(ValueLayout.JAVA_SHORT, 8L * i + 6, (short) 0);
                }
                // poll(2) ignores negative fds: no completion fd, no kick fd.
                Libc.poll(fds, 3, kick == null ? POLL_MILLIS : -1);
                if ((fds.get(ValueLayout.JAVA_SHORT, 14) & Libc.POLLIN) != 0) {
                    Libc.eventfdRead(completion, counter);
                    if (queue.reapCompletions()) {
                        serveFully();
                    }
                }
                if (stopping) {
                    break;
                }
                if (kick == null) {
                    serveFully();
                } else if ((fds.get(ValueLayout.JAVA_SHORT, 22) & Libc.POLLIN) != 0) {
                    kick.read();
                    serveFully();
                }
            }
            queue.quiesce();
            // Nothing new is taken; what is in flight completes and goes back to the driver.
            while (queue.inFlight() > 0) {
                if (completion < 0 || Libc.pollIn(completion, 1000)) {
                    if (completion >= 0) {
                        Libc.eventfdRead(completion, counter);
                    }
                    queue.reapCompletions();
                } else {
                    LOG.info("queue {}: waiting for {} requests in flight", queue.index(), queue.inFlight());
                }
            }
        } catch (Exception | Error e) {
            LOG.error("queue {} thread died", queue.index(), e);
        } finally {
            try {
                queue.close();
            } catch (RuntimeException e) {
                LOG.error("queue {}: {}", queue.index(), e.getMessage());
            }
        }
    }
}
