package org.jvirtio.host;

import java.io.IOException;
import java.util.function.LongSupplier;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueIo;
import org.jvirtio.api.QueueStats;
import org.jvirtio.api.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The queue engine every device gets: one queue at work, whatever the device. It pops chains,
 * gives each a request slot and hands it to the device's {@link QueueHandler}, submits the
 * handler's I/O once per {@link #SUBMIT_EVERY} chains and at the end of a batch, publishes used
 * elements every {@link #PUBLISH_EVERY} completions and at the end of a drain (one release store
 * each, and at most one interrupt, only when EVENT_IDX or the flags say the driver wants it),
 * busy-polls adaptively before sleeping, gives its thread back after a serve budget, and on stop
 * takes nothing new and lets what is in flight complete.
 *
 * <p>Not thread-safe by design: a {@link QueueHost} calls everything from the one thread that
 * owns the queue (no locks on the data path): {@link #open()} first, {@link #serve()} on every
 * kick (or periodically when the queue has no kick eventfd), {@link #reapCompletions()} whenever
 * {@link #completionFd()} is readable; when either returns true (it yielded with work left) the
 * host calls {@code serve()} again soon, after letting the thread's other work run. To stop:
 * {@link #quiesce()}, reap until {@link #inFlight()} is 0, {@link #close()}.
 *
 * <p>A handler that throws loses nothing: the chain goes back to the driver with nothing
 * written, its slot is freed, and the queue goes on.
 */
public final class QueueEngine implements QueueCompletions {
    private static final Logger LOG = LoggerFactory.getLogger(QueueEngine.class);
    /** Chains started before the first submit of a long batch (keeps the backend busy early). */
    public static final int SUBMIT_EVERY = 32;
    /**
     * Used elements are published in batches of this many, not only at the end of a drain: the driver
     * takes the first completions and submits more while the rest are served (about 5x the IOPS at
     * depth 32 on the null disk, docs/PERFORMANCE.md). Each publish is one release store and one
     * fence, and at most one call-eventfd write, only when EVENT_IDX says the driver wants it.
     */
    public static final int PUBLISH_EVERY = 8;
    /** How long one {@link #serve()} may keep its thread while work keeps coming (vhost's "weight"). */
    public static final long SERVE_BUDGET_NANOS = 2_000_000;

    private final QueueBinding binding;
    /** The host's {@link #wakeHere}, or null (any thread reads it). */
    private volatile java.util.function.BooleanSupplier wakeHere;
    private final QueueStats stats;
    /** The clock of the batch being taken or completed (read once per batch), for the latency histogram; a
     *  completion outside a reap (the device completing while it starts a chain) counts the batch that took it. */
    private long batchClock;
    private final Virtqueue q;
    private final QueueHandler handler;
    /** The handler's asynchronous side ({@link QueueHandler#io()}), once open. */
    private QueueIo io = QueueIo.NONE;
    private final String name;
    /** The request slots: the chain each holds, and the one count of what is in flight. */
    private final Slots slots;
    /** The return side: slots freed, used elements written and published. */
    private final UsedBatch used;
    /** A popped chain to the device. */
    private final ChainStart starter;
    /** How long to busy-poll before sleeping. */
    private final PollingPolicy polling = new PollingPolicy();
    /** The other queues of this thread, or null when it has no other. */
    private PollGroup group;
    /** System.nanoTime, or a test's clock. */
    private LongSupplier clock = System::nanoTime;
    /** When the current serve() must give its thread back. */
    private long budgetEnd;
    /** Every slot was in use when the ring still had chains: serve again on completion. */
    private boolean starved;
    private boolean quiescing;
    /** The device turned a chain away ({@link QueueHandler#NOT_NOW}): no chains until it (or the timer) resumes the queue. */
    private final Rest rest = new Rest();
    private boolean opened;
    private boolean closed;

    /** The engine of {@code binding} (its counters are the queue's), serving chains with {@code handler}. */
    public QueueEngine(QueueBinding binding, QueueHandler handler) {
        this.stats = binding.stats();
        this.binding = binding;
        this.q = binding.queue();
        this.handler = handler;
        this.name = "queue " + binding.index();
        this.slots = new Slots(q.size(), stats);
        this.used = new UsedBatch(binding, name, slots);
        this.starter = new ChainStart(handler, q, slots, rest, stats, this, name);
    }

    public int index() {
        return binding.index();
    }

    public QueueBinding binding() {
        return binding;
    }

    /** How long to busy-poll before sleeping, and the credit each request earns past it ({@link PollingPolicy}); for the host. */
    PollingPolicy polling() {
        return polling;
    }

    /** Joins the queues that share this queue's thread (null: none); on the owning thread. */
    void group(PollGroup g) {
        this.group = g;
    }

    /** For tests: the clock polling windows and the serve budget are measured with. */
    void clock(LongSupplier c) {
        this.clock = c;
    }

    /** Whether this queue would take chains now (not stopping, slots free, chains in the ring): for its thread's other queues. */
    boolean wantsThread() {
        return !quiescing && !rest.resting() && slots.anyFree() && q.available() > 0;
    }

    /** Whether the queue has nothing in flight and nothing waiting in its ring that it would take. */
    boolean idle() {
        return slots.allFree() && (quiescing || rest.resting() || q.available() == 0);
    }

    /** Whether the device turned a chain away and has not resumed the queue yet. */
    public boolean resting() {
        return rest.resting();
    }

    /** Opens the handler; on the owning thread, before anything else. */
    public void open() throws IOException {
        handler.open(this);
        opened = true;
        QueueIo i = handler.io();
        io = i != null ? i : QueueIo.NONE;
    }

    /** The handler's completion fd (readable: call {@link #reapCompletions()}), or -1. */
    public int completionFd() {
        return io.completionFd();
    }

    /**
     * How the host wakes this queue for {@link #resumeAfter}: told the delay when the device asks, it calls
     * {@link #timerExpired()} on the queue's thread once due. Before the first serve; else see {@link #timerDeadline()}.
     */
    public void timer(QueueTimer t) {
        rest.timer(t);
    }

    /** How the host serves {@link #wakeHere} (true when called on this queue's thread); before the queue opens. */
    public void wakeHere(java.util.function.BooleanSupplier w) {
        wakeHere = w;
    }

    @Override
    public boolean wakeHere() {
        java.util.function.BooleanSupplier w = wakeHere;
        return w != null && w.getAsBoolean();
    }

    @Override
    public long batchNanos() {
        return batchClock; // read once per batch already (see serve, spin, reapCompletions)
    }

    /** When the device wants to be resumed ({@link #resumeAfter}), on the engine's clock; 0 for no such time. */
    public long timerDeadline() {
        return rest.deadline();
    }

    /**
     * The host's timer fired: resumes the queue if the device asked to be resumed by now (an early
     * or stale firing re-arms, or is ignored) and serves it.
     *
     * @return like {@link #serve()}: true when work is left for another call
     */
    public boolean timerExpired() {
        return !quiescing && rest.due(clock.getAsLong()) && serve();
    }

    /** Chains started and not yet returned to the driver. */
    public int inFlight() {
        return slots.inFlight();
    }

    /** Chains taken from the ring, as its {@link QueueStats} counts them (across restarts when the stats are shared). */
    public long requests() {
        return stats.requests();
    }

    /**
     * Serves what the driver made available, then re-enables notifications (re-checking the
     * ring, so no kick is lost). Busy-polls first when polling is on.
     *
     * <p>A queue kept busy by a fast driver would never let go of its thread; after
     * {@link #SERVE_BUDGET_NANOS} this returns true with notifications still off, and the host
     * must call again soon (after giving other queues and its own tasks a turn).
     *
     * @return true when it stopped with work left (call again), false when the queue is idle
     *         (or waiting for completions to free slots)
     */
    public boolean serve() {
        if (quiescing || rest.resting()) {
            return false; // resting: notifications stay off; the device's resume() serves again
        }
        long entered = clock.getAsLong();
        stats.addWakeup();
        budgetEnd = entered + SERVE_BUDGET_NANOS;
        polling.woke(entered);
        batchClock = entered; // when the chains drained next are taken (the clock already read, none more)
        while (true) {
            q.disableNotifications();
            int n = drain();
            if (rest.resting()) {
                return false;
            }
            if (!slots.anyFree()) {
                // Cannot take more until something completes; reapCompletions() comes back here.
                starved = true;
                return false;
            }
            long waitFrom = clock.getAsLong();
            batchClock = waitFrom;
            if (n > 0 && waitFrom - budgetEnd > 0) {
                return true;
            }
            if (polling.wantsPoll() && spin()) {
                stats.addPollHit();
                continue; // work arrived within the window: the sweet spot, nothing to adjust
            }
            if (rest.resting()) {
                return false;
            }
            if (!q.enableNotifications()) {
                polling.sleeping(waitFrom);
                return false;
            }
        }
    }

    /**
     * Polls until work shows up (true) or the window ends (false): the adaptive window, or as
     * long as the credit lasts when that is longer and the thread's other queues are idle. Gives
     * up at once when another queue of the thread has chains to take.
     */
    private boolean spin() {
        long start = clock.getAsLong();
        long window = polling.pollNanos(polling.creditExtends() && (group == null || group.othersIdle(this)));
        long deadline = start + window;
        long now = start;
        do {
            if (io.pending() > 0) {
                reapCompletions();
            }
            batchClock = now;
            if (drain() > 0) {
                polling.polled(clock.getAsLong() - start, true);
                return true;
            }
            if (rest.resting() || (group != null && group.otherWantsThread(this))) {
                now = clock.getAsLong();
                break;
            }
            if (polling.pastWindow(now - start)) {
                // Polling on credit: any other thread that wants this CPU (a vCPU of the guest on
                // the same host CPU, a front-end in this process, the JIT) goes first. Measured:
                // bin/demo, backend and client in one JVM on two CPUs, fell from 140-185 k to
                // 110-125 k IOPS when the credit spun; yielding, 163-190 k.
                Thread.yield();
            } else {
                Thread.onSpinWait();
            }
        } while ((now = clock.getAsLong()) - deadline < 0);
        polling.polled(now - start, false);
        return false;
    }

    /**
     * Takes no more chains from the ring (what is in flight still completes): the first step of
     * stopping. On the owning thread.
     */
    public void quiesce() {
        quiescing = true;
    }

    /**
     * Gives the ring back without waiting for what is in flight: the second step of a stop that
     * ran out of time (storage that does not answer). Chains that complete later free their
     * slots and nothing else: no used element, no interrupt, since the driver may already have
     * resumed the ring elsewhere. The handler still finishes them (its I/O may still write into
     * guest memory, which the transport keeps mapped until {@link #close()}); those requests are
     * lost to the driver, which is what a bounded stop trades for a control loop that answers.
     * Callable from any thread; the host makes sure the owning thread saw it before the ring is
     * handed back.
     */
    public void abandon() {
        quiescing = true;
        used.abandon();
    }

    /** Whether {@link #abandon()} was called. */
    public boolean abandoned() {
        return used.abandoned();
    }

    /**
     * Delivers ready completions and publishes what they returned; serves the ring again if it
     * was waiting for free slots.
     *
     * @return like {@link #serve()}: true when work is left for another call
     */
    public boolean reapCompletions() {
        boolean wasResting = rest.resting();
        batchClock = clock.getAsLong(); // the completions' time, one clock read per reap
        try {
            io.reap();
        } catch (RuntimeException | Error e) {
            LOG.error("{}: the device failed delivering completions: {}", name, e.toString(), e);
        }
        publish();
        boolean resumed = wasResting && !rest.resting();
        if ((resumed || (starved && slots.anyFree())) && !quiescing) {
            starved = false;
            return serve();
        }
        return false;
    }

    /** Pops every available chain (as far as slots allow), submits, publishes. */
    private int drain() {
        if (quiescing) {
            return 0;
        }
        int n = 0;
        DescriptorChain c;
        while (slots.anyFree() && !rest.resting() && (c = q.pop()) != null) {
            if (!starter.start(c, batchClock)) {
                break; // put back: the queue rests
            }
            if (++n % SUBMIT_EVERY == 0) {
                submit();
            }
            if (used.size() >= PUBLISH_EVERY) {
                publish();
            }
            if (n % PUBLISH_EVERY == 0 && clock.getAsLong() - budgetEnd > 0) {
                break; // the serve budget is spent: serve() yields
            }
        }
        if (n > 0) {
            submit();
            publish();
            polling.served(n);
        }
        return n;
    }

    @Override
    public boolean serveOneNow() {
        if (quiescing || closed || !opened || !slots.anyFree()) {
            return false;
        }
        DescriptorChain c = q.pop();
        if (c == null) {
            return false;
        }
        int before = used.size();
        boolean started = starter.start(c, batchClock);
        int after = used.size();
        if (after >= PUBLISH_EVERY || (before == 0 && after > 0 && !wakeHere())) {
            publish(); // a full batch, or no host turn to publish in: now
        }
        // else: the reap wakeHere() asked for (when the first of these was added) publishes them
        // before the thread sleeps; nothing else leaves used elements unpublished between calls
        return started;
    }

    /**
     * The device has input for the chains it turned away: the queue takes chains again (served
     * right after the {@link QueueHandler#reap()} this is called from). On the queue's thread.
     */
    @Override
    public void resume() {
        rest.end();
    }

    /**
     * Resumes the queue by itself after {@code nanos}, through the host's timer (or a host that
     * asks {@link #timerDeadline()}). On the queue's thread.
     */
    @Override
    public void resumeAfter(long nanos) {
        rest.resumeAfter(clock.getAsLong(), nanos);
    }

    private void submit() {
        try {
            io.submit();
        } catch (RuntimeException | Error e) {
            LOG.error("{}: the device failed submitting: {}", name, e.toString(), e);
        }
    }

    /**
     * Returns the chain of {@code slot} to the driver with {@code writtenLength} bytes written;
     * published with the next batch. For the handler, on the queue's thread.
     */
    @Override
    public void complete(int slot, int writtenLength) {
        if (!used.complete(slot, writtenLength, batchClock)) {
            LOG.error("{}: the device completed slot {}, which holds no chain; ignored", name, slot);
        }
    }

    /**
     * Returns the chain of {@code slot} with more chains the handler took from the ring itself, in
     * order and visible to the driver together; published with the next batch. On the queue's
     * thread.
     */
    @Override
    public void completeTogether(int slot, DescriptorChain[] chains, int[] writtenLengths, int n) {
        if (!used.completeTogether(slot, chains, writtenLengths, n, batchClock)) {
            LOG.error("{}: the device completed slot {} together with chains it does not hold first; ignored", name, slot);
        }
    }

    private void publish() {
        used.publish();
    }

    /** Releases the handler; call with nothing in flight. Idempotent. */
    public void close() {
        if (inFlight() != 0) {
            throw new IllegalStateException(name + " closed with " + inFlight() + " chains in flight");
        }
        if (closed) {
            return;
        }
        closed = true;
        if (opened) {
            handler.close();
        }
    }

    @Override
    public String toString() {
        return name + " (" + inFlight() + " in flight)";
    }
}
