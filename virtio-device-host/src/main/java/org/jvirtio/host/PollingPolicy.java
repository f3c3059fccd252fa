package org.jvirtio.host;

/**
 * How long one queue busy-polls before it sleeps: QEMU's adaptive window (util/aio-posix.c),
 * extended by a polling credit that the requests served pay for. The {@link QueueEngine} asks it
 * and reports to it; it keeps no clock of its own (times are the engine's), so it is tested on
 * its own with plain numbers.
 *
 * <p><b>The window.</b> Up to {@link #window(long) the maximum}; after a wait that polling did
 * not cover, it grows (doubling from {@link #INITIAL_POLL_NANOS}) if a window up to the maximum
 * would have covered it, and halves (to 0 below {@link #MIN_POLL_NANOS}) if even the maximum would
 * not have, unless the polls before it kept finding work (a straggler: the window holds). A poll
 * on credit that finds work past the window but within the maximum grows the window to cover it.
 *
 * <p><b>The credit.</b> Each request taken from the ring earns the queue
 * {@link #creditPerRequest(long) nanosPerRequest} of busy-polling, banked up to
 * {@link #POLL_CREDIT_CAP_NANOS}; a poll may run past the window while there is credit (at least
 * {@link #POLL_CREDIT_MIN_NANOS}) and the thread's other queues are idle, and the time spent past
 * the window uses it up. So the extra polling costs at most {@code nanosPerRequest} of CPU per
 * request served, averaged over any stretch of time; a wait longer than the cap forfeits the bank,
 * so a queue whose requests come further apart than that never polls on credit at all. But a
 * driver that keeps a queue busy with round trips longer than the window (a guest whose wake-ups
 * are slow, as on a virtual machine's host) finds the device still polling when it submits again,
 * so neither side has to sleep and be woken (measured: 2-10x the IOPS at less CPU per request,
 * docs/PERFORMANCE.md). Only while polling is on (a window above 0).
 *
 * <p>Not thread-safe: the queue's thread only.
 */
public final class PollingPolicy {
    static final long MIN_POLL_NANOS = 1_000;
    static final long INITIAL_POLL_NANOS = 4_000;
    /** The default of {@link #creditPerRequest(long)}: busy-polling a served request earns, in ns. */
    public static final long DEFAULT_POLL_CREDIT_NANOS = 2_000;
    /**
     * The most polling credit a queue banks: the longest a credit-paid poll can last. A wait
     * longer than this (which no bank could have covered: the queue is not busy) forfeits it.
     */
    public static final long POLL_CREDIT_CAP_NANOS = 200_000;
    /**
     * Credit is spent only on polls at least this long (twice QEMU's default window): shorter
     * ones would not outlast a guest's wake-up on a virtual machine's host, where the credit
     * earns its keep, and would only cost.
     */
    public static final long POLL_CREDIT_MIN_NANOS = 64_000;

    /**
     * Polls that must find work in a row before a wait longer than the maximum is taken for a
     * straggler (a guest slow this once) rather than a queue that has gone quiet: then the window
     * holds. A straggler costs one poll; at most one in this many, that is an eighth of a window
     * per request found.
     */
    static final int FOUND_BEFORE_A_STRAGGLER = 8;

    private long maxNanos;
    /** Polls in a row that found work (since the last wait longer than the maximum). */
    private int foundInARow;
    private long windowNanos;
    private long creditPerRequest = DEFAULT_POLL_CREDIT_NANOS;
    /** Polling paid for by the requests served, in ns. */
    private long credit;
    /** When the current wait for work began (0: not waiting, or polling off). */
    private long waitStart;

    /** Busy-polls up to {@code micros} before sleeping; 0 turns polling off. A new window starts afresh. */
    public void window(long micros) {
        if (micros < 0) {
            throw new IllegalArgumentException("negative poll window: " + micros);
        }
        this.maxNanos = micros * 1000;
        this.windowNanos = maxNanos;
        this.waitStart = 0;
        this.foundInARow = 0;
    }

    /** Polling each request served earns, in ns; 0 turns the credit off. */
    public void creditPerRequest(long nanos) {
        if (nanos < 0) {
            throw new IllegalArgumentException("negative poll credit: " + nanos);
        }
        this.creditPerRequest = nanos;
    }

    /** Whether polling is on at all. */
    boolean on() {
        return maxNanos > 0;
    }

    /** The adaptive window now, in ns. */
    long windowNanos() {
        return windowNanos;
    }

    /** The credit banked now, in ns. */
    long creditNanos() {
        return credit;
    }

    /** The queue went to sleep (notifications on) at {@code now}. */
    void sleeping(long now) {
        waitStart = on() ? now : 0;
    }

    /**
     * The queue woke (a kick, a completion) at {@code now}: the wait since {@link #sleeping} adjusts
     * the window, and one longer than the cap forfeits the credit.
     */
    void woke(long now) {
        if (!on() || waitStart == 0) {
            return;
        }
        long blocked = now - waitStart;
        waitStart = 0;
        adjust(blocked);
        if (blocked > POLL_CREDIT_CAP_NANOS) {
            credit = 0; // not busy: the bank lapses
        }
    }

    /**
     * QEMU's rule: after a wait of {@code blockedNanos} (polling included) that polling did not
     * cover, poll longer if a window up to the maximum would have covered it, shorter if even the
     * maximum would not have; except that a wait longer than the maximum right after
     * {@link #FOUND_BEFORE_A_STRAGGLER} polls in a row found work is a straggler, and the window
     * holds. (QEMU's rule alone is bistable for a guest whose round trip is near the maximum and
     * whose device wakes slowly: one straggler shrinks the window below the round trip, and every
     * wait after it, the wake-up included, looks longer than the maximum.)
     */
    private void adjust(long blockedNanos) {
        if (blockedNanos <= windowNanos) {
            return;
        }
        if (blockedNanos > maxNanos) {
            boolean straggler = foundInARow >= FOUND_BEFORE_A_STRAGGLER;
            foundInARow = 0;
            if (!straggler) {
                windowNanos = windowNanos / 2 < MIN_POLL_NANOS ? 0 : windowNanos / 2;
            }
        } else if (windowNanos < maxNanos) {
            windowNanos = Math.min(maxNanos, windowNanos == 0 ? INITIAL_POLL_NANOS : 2 * windowNanos);
        }
    }

    /** {@code n} requests were taken from the ring: they earn credit (while polling is on). */
    void served(int n) {
        if (on()) {
            credit = Math.min(POLL_CREDIT_CAP_NANOS, credit + n * creditPerRequest);
        }
    }

    /** Whether to poll before sleeping: polling is on and there is a window or credit enough for a poll. */
    boolean wantsPoll() {
        return on() && (windowNanos > 0 || credit >= POLL_CREDIT_MIN_NANOS);
    }

    /** Whether the credit would make a poll longer than the window (then the thread's other queues must be idle for it). */
    boolean creditExtends() {
        return credit > windowNanos && credit >= POLL_CREDIT_MIN_NANOS;
    }

    /** How long the next poll lasts: the credit when {@code othersIdle} and it {@linkplain #creditExtends extends} the window, else the window. */
    long pollNanos(boolean othersIdle) {
        return othersIdle && creditExtends() ? credit : windowNanos;
    }

    /** Whether a poll {@code elapsed} ns old runs on credit (past the window): then others that want the CPU go first. */
    boolean pastWindow(long elapsed) {
        return elapsed > windowNanos;
    }

    /**
     * A poll lasted {@code nanos} and found work or not: the part past the window uses up credit.
     * One that ran past the window (on credit) and found work within the maximum is the measure
     * QEMU's rule lacks when sleeps are slow: a window that long would have found it, so the
     * window grows to twice that (up to the maximum); a closed window opens again this way.
     */
    void polled(long nanos, boolean found) {
        if (nanos > windowNanos) {
            credit = Math.max(0, credit - (nanos - windowNanos));
            if (found && nanos <= maxNanos) {
                windowNanos = Math.min(maxNanos, Math.max(INITIAL_POLL_NANOS, 2 * nanos));
            }
        }
        if (found) {
            foundInARow = Math.min(foundInARow + 1, FOUND_BEFORE_A_STRAGGLER);
        }
    }
}
