package org.jvirtio.host;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The simple {@link QueueHost}: a thread per queue waiting in poll(2) on a stop eventfd, the
 * kick eventfd and the completion fd. A queue without a kick eventfd (vhost-user NOFD) is polled
 * every millisecond.
 */
final class ThreadPerQueueHost implements QueueHost.Started {
    private static final Logger LOG = LoggerFactory.getLogger(ThreadPerQueueHost.class);
    private static final int POLL_MILLIS = 1;

    private final QueueEngine engine;
    private final EventFd stopFd;
    private final Thread thread;
    private final CompletableFuture<Void> started = new CompletableFuture<>();
    private volatile boolean stopping;
    private final AtomicBoolean stopped = new AtomicBoolean();

    private ThreadPerQueueHost(QueueEngine engine) throws ErrnoException {
        this.engine = engine;
        this.stopFd = EventFd.create(true);
        this.thread = Thread.ofPlatform().name("jvirtio-q" + engine.index()).daemon().unstarted(this::run);
    }

    static QueueHost.Started start(QueueEngine engine, long pollMicros) {
        ThreadPerQueueHost h;
        try {
            h = new ThreadPerQueueHost(engine);
        } catch (ErrnoException e) {
            throw new IllegalStateException("cannot start queue " + engine.index() + ": " + e.getMessage(), e);
        }
        engine.pollMicros(pollMicros);
        h.thread.start();
        try {
            h.started.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException e) {
            h.stop();
            throw new IllegalStateException("cannot start queue " + engine.index() + ": " + e.getCause().getMessage(), e.getCause());
        }
        return h;
    }

    @Override
    public void stop() {
        if (stopped.getAndSet(true)) {
            return;
        }
        stopping = true;
        stopFd.signal();
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        stopFd.close();
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** The thread serves one queue only: it calls again at once when serve yields, unless stopping. */
    private void serveFully() {
        while (engine.serve() && !stopping) {
            // yielded with work left
        }
    }

    private void run() {
        EventFd kick = engine.binding().kick();
        try (Arena arena = Arena.ofConfined()) {
            try {
                engine.open();
            } catch (Exception | Error e) {
                started.completeExceptionally(e);
                return;
            }
            int completion = engine.completionFd();
            MemorySegment fds = arena.allocate(24, 8);
            MemorySegment counter = arena.allocate(8, 8);
            fds.set(ValueLayout.JAVA_INT, 0, stopFd.fd());
            fds.set(ValueLayout.JAVA_INT, 8, completion);
            fds.set(ValueLayout.JAVA_INT, 16, kick != null ? kick.fd() : -1);
            for (int i = 0; i < 3; i++) {
                fds.set(ValueLayout.JAVA_SHORT, 8L * i + 4, (short) Libc.POLLIN);
            }
            // Buffers made available before the start are served now, not at the next kick.
            serveFully();
            started.complete(null);
            while (!stopping) {
                for (int i = 0; i < 3; i++) {
                    fds.set(ValueLayout.JAVA_SHORT, 8L * i + 6, (short) 0);
                }
                // poll(2) ignores negative fds: no completion fd, no kick fd.
                Libc.poll(fds, 3, kick == null ? POLL_MILLIS : -1);
                if ((fds.get(ValueLayout.JAVA_SHORT, 14) & Libc.POLLIN) != 0) {
                    Libc.eventfdRead(completion, counter);
                    if (engine.reapCompletions()) {
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
            engine.quiesce();
            // Nothing new is taken; what is in flight completes and goes back to the driver.
            while (engine.inFlight() > 0) {
                if (completion < 0 || Libc.pollIn(completion, 1000)) {
                    if (completion >= 0) {
                        Libc.eventfdRead(completion, counter);
                    }
                    engine.reapCompletions();
                } else {
                    LOG.info("queue {}: waiting for {} chains in flight", engine.index(), engine.inFlight());
                }
            }
        } catch (Exception | Error e) {
            LOG.error("queue {} thread died", engine.index(), e);
        } finally {
            started.complete(null);
            try {
                engine.close();
            } catch (RuntimeException e) {
                LOG.error("queue {}: {}", engine.index(), e.getMessage());
            }
        }
    }
}
