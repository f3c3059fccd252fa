package org.jvirtio.host;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandle;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollIoOps;
import io.netty.channel.unix.FileDescriptor;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.ScheduledFuture;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.linux.Libc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The I/O threads host: a fixed number of Netty epoll event loops, each owning the queues
 * assigned to it (queue i runs on thread i mod n). In a queue's loop sit its kick eventfd and its
 * handler's completion fd (an io_uring eventfd, say); the loop calls {@link QueueEngine#serve()}
 * on a kick and {@link QueueEngine#reapCompletions()} on completions, so a queue is only ever
 * touched by its own thread and the data path takes no lock. Stopping a queue is a task on its
 * loop: take nothing new, let what is in flight complete, then close.
 */
public final class IoThreads implements QueueHost {
    private static final Logger LOG = LoggerFactory.getLogger(IoThreads.class);
    private static final int NOFD_POLL_MICROS = 1000;

    private final MultiThreadIoEventLoopGroup group;
    private final IoEventLoop[] loops;
    private final long pollMicros;
    private final long pollCreditNanos;
    /** The queues of each loop, for their busy-polls; each touched only on its loop. */
    private final PollGroup[] groups;

    /**
     * @param threads    number of I/O threads
     * @param pollMicros adaptive busy-polling window per queue (0: off)
     */
    public IoThreads(int threads, long pollMicros) {
        this(threads, pollMicros, PollingPolicy.DEFAULT_POLL_CREDIT_NANOS);
    }

    /**
     * @param threads         number of I/O threads
     * @param pollMicros      adaptive busy-polling window per queue (0: off)
     * @param pollCreditNanos polling each request served earns ({@link PollingPolicy#creditPerRequest}; 0: none)
     */
    public IoThreads(int threads, long pollMicros, long pollCreditNanos) {
        if (pollCreditNanos < 0) {
            throw new IllegalArgumentException("negative poll credit: " + pollCreditNanos);
        }
        if (threads < 1) {
            throw new IllegalArgumentException("need at least one I/O thread: " + threads);
        }
        if (pollMicros < 0) {
            throw new IllegalArgumentException("negative poll window: " + pollMicros);
        }
        AtomicInteger n = new AtomicInteger();
        this.group = new MultiThreadIoEventLoopGroup(threads,
                (java.util.concurrent.ThreadFactory) r -> Thread.ofPlatform().name("jvirtio-io-" + n.getAndIncrement()).daemon().unstarted(r),
                EpollIoHandler.newFactory());
        List<IoEventLoop> l = new ArrayList<>();
        for (EventExecutor e : group) {
            l.add((IoEventLoop) e);
        }
        this.loops = l.toArray(new IoEventLoop[0]);
        this.pollMicros = pollMicros;
        this.pollCreditNanos = pollCreditNanos;
        this.groups = new PollGroup[loops.length];
        for (int i = 0; i < groups.length; i++) {
            groups[i] = new PollGroup();
        }
    }

    public int threads() {
        return loops.length;
    }

    /** The event loop that owns queue {@code index}: work submitted to it runs on the queue's thread. */
    public IoEventLoop loopOf(int index) {
        return loops[index % loops.length];
    }

    @Override
    public Started start(QueueEngine queue) {
        return start(queue, 0, pollMicros, pollCreditNanos);
    }

    private Started start(QueueEngine queue, int offset, long micros, long creditNanos) {
        int at = Math.floorMod(offset + queue.index(), loops.length);
        QueueRun run = new QueueRun(queue, loops[at], groups[at], micros, creditNanos);
        try {
            run.begin();
        } catch (RuntimeException e) {
            // Half begun (the device's open failed, an fd did not register): undo what was
            // registered and close the engine, so nothing of it stays on the loop.
            run.stop(TimeUnit.SECONDS.toNanos(1));
            throw e;
        }
        return run;
    }

    /** Devices given a share of these threads so far: the next one's queues start on the next thread. */
    private final AtomicInteger shares = new AtomicInteger();

    /**
     * A share of these threads for one device among several in a process (as qemu-storage-daemon's
     * iothread objects are shared by its exports): its queue i runs on thread (k + i) mod n, k
     * counting the devices given a share before it, so that single-queue devices spread over the
     * threads; with its own polling settings. Closing the share does nothing: the threads are
     * closed with this object, after every device stopped.
     *
     * @param pollMicros      the device's busy-polling window (0: off)
     * @param pollCreditNanos the device's polling credit per request (0: none)
     */
    public QueueHost share(long pollMicros, long pollCreditNanos) {
        if (pollMicros < 0 || pollCreditNanos < 0) {
            throw new IllegalArgumentException("negative poll window or credit: " + pollMicros + ", " + pollCreditNanos);
        }
        int offset = shares.getAndIncrement();
        return engine -> start(engine, offset, pollMicros, pollCreditNanos);
    }

    @Override
    public void close() {
        // Bounded: a thread blocked inside a device (storage that does not answer) is left to
        // the end of the process rather than keeping it from ending.
        if (!group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(5, TimeUnit.SECONDS)) {
            LOG.warn("I/O threads did not end within 5 s (a device is blocked); left to the end of the process");
        }
    }

    private static <T> T await(io.netty.util.concurrent.Future<T> f, String what) {
        // Uninterruptibly, the interrupt kept for the caller: a queue's start on its loop is short
        // and bounded, and a caller interrupted half-way (a VMM thread writing DRIVER_OK) would
        // leave the queue half-started and nobody told (the MMIO fuzz found it).
        if (!f.awaitUninterruptibly(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("cannot " + what + ": no answer from the I/O thread in 30 s");
        }
        if (!f.isSuccess()) {
            throw new IllegalStateException("cannot " + what + ": " + f.cause().getMessage(), f.cause());
        }
        return f.getNow();
    }

    /** One queue on its loop. Every field is touched on the loop only, except {@link #done}. */
    private final class QueueRun implements Started {
        private final QueueEngine queue;
        private final IoEventLoop loop;
        private final PollGroup pollGroup;
        private final EventFd kick;
        private final CompletableFuture<Void> done = new CompletableFuture<>();
        private IoRegistration kickRegistration;
        private IoRegistration completionRegistration;
        private ScheduledFuture<?> nofdPoll;
        private final java.lang.foreign.MemorySegment counter = java.lang.foreign.Arena.ofAuto().allocate(8, 8);
        private boolean stopping;
        private boolean closed;
        /** Bound once: a method reference per event would allocate per event. */
        private final java.util.function.BooleanSupplier serve;
        private final java.util.function.BooleanSupplier reap;
        private final java.util.function.BooleanSupplier timer;
        /** A reap asked for by {@link #wakeHere} is among the loop's tasks. */
        private boolean localReapPending;
        private final Runnable localReap = this::onLocalReap;

        private final long micros;
        private final long creditNanos;

        QueueRun(QueueEngine queue, IoEventLoop loop, PollGroup pollGroup, long micros, long creditNanos) {
            this.queue = queue;
            this.loop = loop;
            this.pollGroup = pollGroup;
            this.micros = micros;
            this.creditNanos = creditNanos;
            this.kick = queue.binding().kick();
            this.serve = queue::serve;
            this.reap = queue::reapCompletions;
            this.timer = queue::timerExpired;
        }

        void begin() {
            await(loop.submit(() -> {
                queue.polling().window(micros);
                queue.polling().creditPerRequest(creditNanos);
                queue.timer(nanos -> loop.schedule(this::onTimer, nanos, TimeUnit.NANOSECONDS));
                queue.wakeHere(this::wakeHere);
                queue.open();
                pollGroup.add(queue);
                return null;
            }), "open queue " + queue.index());
            int cfd = await(loop.submit(queue::completionFd), "read the completion fd");
            if (cfd >= 0) {
                completionRegistration = register(new Handle(cfd, this::onCompletions));
            }
            if (kick != null) {
                kickRegistration = register(new Handle(kick.fd(), this::onKick));
            }
            await(loop.submit(() -> {
                if (kick == null) {
                    nofdPoll = loop.scheduleAtFixedRate(this::onKick, NOFD_POLL_MICROS, NOFD_POLL_MICROS, TimeUnit.MICROSECONDS);
                }
                // Buffers made available before the start are served now, not at the next kick.
                guarded(queue::serve);
            }), "start queue " + queue.index());
        }

        private IoRegistration register(EpollIoHandle h) {
            IoRegistration r = await(loop.register(h), "register fd " + h.fd().intValue() + " with the I/O thread");
            r.submit(EpollIoOps.EPOLLIN);
            return r;
        }

        private void onKick() {
            if (stopping) {
                return;
            }
            if (kick != null) {
                kick.read();
            }
            guarded(serve);
        }

        /** The engine's timer (a device's resumeAfter): on the loop, after the delay. */
        private void onTimer() {
            if (!stopping && !closed) {
                guarded(timer);
            }
        }

        private void onCompletions() {
            if (closed) {
                // An event of this epoll round, after the queue closed its channel: the fd number
                // may already belong to something else.
                return;
            }
            Libc.eventfdRead(queue.completionFd(), counter);
            guarded(reap);
            if (stopping) {
                finishIfIdle();
            }
        }

        /**
         * Another queue's handler on this loop woke this queue: its reap runs as one of the loop's
         * tasks, after the events at hand and before the loop sleeps (a task added on the loop
         * wakes nothing), instead of an eventfd write, an epoll wake-up and a read.
         */
        private boolean wakeHere() {
            if (!loop.inEventLoop()) {
                return false;
            }
            if (!localReapPending) {
                localReapPending = true;
                pollGroup.woken(queue, true); // a queue of this thread polling now lets go at once
                loop.execute(localReap);
            }
            return true;
        }

        private void onLocalReap() {
            localReapPending = false;
            pollGroup.woken(queue, false);
            if (closed) {
                return;
            }
            guarded(reap);
            if (stopping) {
                finishIfIdle();
            }
        }

        private void guarded(java.util.function.BooleanSupplier r) {
            try {
                if (r.getAsBoolean() && kick != null) {
                    // The queue yielded with work left: come back after the loop's other fds and
                    // tasks had their turn (a queue without a kick fd is polled anyway).
                    kick.signal();
                }
            } catch (RuntimeException | Error e) {
                // Netty would only log it; a device bug must not kill the other queues of this loop.
                LOG.error("queue {}: {}", queue.index(), e.toString(), e);
            }
        }

        @Override
        public void requestStop() {
            loop.execute(() -> {
                if (stopping) {
                    return;
                }
                stopping = true;
                queue.quiesce();
                if (kickRegistration != null) {
                    kickRegistration.cancel();
                }
                if (nofdPoll != null) {
                    nofdPoll.cancel(false);
                }
                finishIfIdle();
            });
        }

        @Override
        public boolean stop(long limitNanos) {
            requestStop();
            long started = System.nanoTime();
            if (StopWait.await(done, limitNanos, queue, LOG)) {
                return true;
            }
            queue.abandon();
            // Once this task ran, the loop is outside the engine: no completion that was under
            // way while abandon() was set can still reach the ring.
            io.netty.util.concurrent.Future<?> barrier = loop.submit(this::finishIfIdle);
            if (!barrier.awaitUninterruptibly(1, TimeUnit.SECONDS)) {
                LOG.error("queue {}: its I/O thread is blocked inside the device; a completion it is delivering may still reach the ring",
                        queue.index());
            }
            if (done.isDone()) {
                return true; // the last request completed just now
            }
            StopWait.gaveUp(started, queue, LOG);
            return false;
        }

        @Override
        public void whenClosed(Runnable action) {
            done.whenComplete((v, e) -> action.run());
        }

        private void finishIfIdle() {
            if (closed || queue.inFlight() > 0) {
                return;
            }
            closed = true;
            pollGroup.remove(queue);
            if (completionRegistration != null) {
                completionRegistration.cancel();
            }
            try {
                queue.close();
            } catch (RuntimeException e) {
                LOG.error("queue {}: {}", queue.index(), e.getMessage());
            }
            done.complete(null);
        }
    }

    /** An fd in the loop's epoll set (level-triggered) and what to do when it is readable. */
    private static final class Handle implements EpollIoHandle {
        private final FileDescriptor fd;
        private final Runnable action;

        Handle(int fd, Runnable action) {
            this.fd = new FileDescriptor(fd);
            this.action = action;
        }

        @Override
        public FileDescriptor fd() {
            return fd;
        }

        @Override
        public void handle(IoRegistration registration, IoEvent event) {
            action.run();
        }

        @Override
        public void close() {
            // the fd belongs to the queue (kick) or its io channel (completions)
        }
    }
}
