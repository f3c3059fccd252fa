package org.jvirtio.host;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
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
    /** The queue thread saw {@link QueueEngine#abandon()} (and is outside the engine when it says so). */
    private volatile boolean abandonSeen;
    private final AtomicBoolean stopped = new AtomicBoolean();
    /** Completed when the thread has closed the engine and ends. */
    private final CompletableFuture<Void> closed = new CompletableFuture<>();

    private ThreadPerQueueHost(QueueEngine engine) throws ErrnoException {
        this.engine = engine;
        this.stopFd = EventFd.create(true);
        this.thread = Thread.ofPlatform().name("jvirtio-q" + engine.index()).daemon().unstarted(this::run);
    }

    static QueueHost.Started start(QueueEngine engine, long pollMicros, long pollCreditNanos) {
        ThreadPerQueueHost h;
        try {
            h = new ThreadPerQueueHost(engine);
        } catch (ErrnoException e) {
            throw new IllegalStateException("cannot start queue " + engine.index() + ": " + e.getMessage(), e);
        }
        engine.polling().window(pollMicros);
        engine.polling().creditPerRequest(pollCreditNanos);
        h.thread.start();
        // Uninterruptibly, the interrupt kept for the caller (as IoThreads does): a caller
        // interrupted here (a VMM thread writing DRIVER_OK) must still learn whether the queue
        // started, not get a queue back whose failure nobody will hear of.
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    h.started.get();
                    return h;
                } catch (InterruptedException e) {
                    interrupted = true;
                } catch (ExecutionException e) {
                    h.stop();
                    throw new IllegalStateException("cannot start queue " + engine.index() + ": " + e.getCause().getMessage(), e.getCause());
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void requestStop() {
        synchronized (stopped) {
            if (!stopped.get() && !stopping) {
                stopping = true;
                stopFd.signal(); // still open: stop() closes it, and stop() has not begun
            }
        }
    }

    @Override
    public boolean stop(long limitNanos) {
        boolean again;
        synchronized (stopped) {
            again = stopped.getAndSet(true);
        }
        if (again) {
            awaitClosed(limitNanos);
            return closed.isDone();
        }
        stopping = true;
        stopFd.signal();
        long started = System.nanoTime();
        if (StopWait.await(closed, limitNanos, engine, LOG)) {
            stopFd.close();
            return true;
        }
        engine.abandon();
        // The thread acknowledges between two reaps: after that no completion that was under way
        // while abandon() was set can still reach the ring.
        stopFd.signal();
        long ackBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        while (!abandonSeen && !closed.isDone() && System.nanoTime() - ackBy < 0) {
            Thread.onSpinWait();
            LockSupport.parkNanos(1_000_000);
        }
        if (closed.isDone()) {
            stopFd.close();
            return true;
        }
        // Not signalled any more: closed with the engine, by the queue thread.
        closed.whenComplete((v, e) -> stopFd.close());
        if (!abandonSeen) {
            LOG.error("queue {}: its thread is blocked inside the device; a completion it is delivering may still reach the ring",
                    engine.index());
        }
        StopWait.gaveUp(started, engine, LOG);
        return false;
    }

    private void awaitClosed(long limitNanos) {
        try {
            closed.get(limitNanos, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException e) {
            // as it is
        }
    }

    @Override
    public void whenClosed(Runnable action) {
        closed.whenComplete((v, e) -> action.run());
    }

    /** Milliseconds until the engine's timer is due (rounded up), 0 when it is, -1 without one. */
    private int untilTimer() {
        long at = engine.timerDeadline();
        if (at == 0) {
            return -1;
        }
        long left = at - System.nanoTime();
        return left <= 0 ? 0 : (int) Math.min(Integer.MAX_VALUE, (left + 999_999) / 1_000_000);
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
            // Buffers made available before the start are served now, not at the next kick: one
            // serve (a budget's worth) before start() returns, the rest on this thread's own
            // time. A guest whose ring never runs dry (its used ring laid over its avail ring
            // feeds it) must not keep start(), and with it the control thread, from returning.
            boolean more = engine.serve();
            started.complete(null);
            if (more) {
                serveFully();
            }
            while (!stopping) {
                for (int i = 0; i < 3; i++) {
                    fds.set(ValueLayout.JAVA_SHORT, 8L * i + 6, (short) 0);
                }
                // poll(2) ignores negative fds: no completion fd, no kick fd. A resumeAfter the
                // device asked for bounds the wait.
                Libc.poll(fds, 3, kick == null ? POLL_MILLIS : untilTimer());
                if (engine.timerDeadline() != 0 && untilTimer() == 0 && engine.timerExpired()) {
                    serveFully();
                }
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
            // Nothing new is taken; what is in flight completes and goes back to the driver (or,
            // once the stop gave up waiting and abandoned the engine, into nothing).
            fds.set(ValueLayout.JAVA_INT, 16, -1);
            while (engine.inFlight() > 0) {
                if (engine.abandoned()) {
                    abandonSeen = true;
                }
                for (int i = 0; i < 3; i++) {
                    fds.set(ValueLayout.JAVA_SHORT, 8L * i + 6, (short) 0);
                }
                Libc.poll(fds, 3, completion < 0 ? POLL_MILLIS : 1000);
                if ((fds.get(ValueLayout.JAVA_SHORT, 6) & Libc.POLLIN) != 0) {
                    stopFd.read();
                }
                if (completion < 0 || (fds.get(ValueLayout.JAVA_SHORT, 14) & Libc.POLLIN) != 0) {
                    if (completion >= 0) {
                        Libc.eventfdRead(completion, counter);
                    }
                    engine.reapCompletions();
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
            closed.complete(null);
        }
    }
}
