package org.jvirtio.rng;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;

/**
 * The rng queue under a {@link RateLimit}: a chain that finds the period's budget spent is put
 * back into the ring ({@link QueueHandler#NOT_NOW}) and the queue rests until the next period
 * starts ({@link QueueCompletions#resumeAfter}: the framework's timer, no thread or timerfd of
 * ours). The waiting chains stay in the driver's ring, in its order: nothing is held, so a stop
 * (QEMU's GET_VRING_BASE, a migration) never waits for the period. Nothing allocated per request.
 */
final class RateLimitedQueue implements QueueHandler {
    /** Fills a chain with at most {@code max} bytes; returns the bytes written. */
    @FunctionalInterface
    interface Filler {
        int fill(DescriptorChain chain, int max);
    }

    private final Filler filler;
    private final long maxBytes;
    private final long periodNanos;
    private long budget;
    private long periodStart;
    private QueueCompletions completions;

    RateLimitedQueue(Filler filler, RateLimit limit) {
        this.filler = filler;
        this.maxBytes = limit.maxBytes();
        this.periodNanos = limit.periodMillis() * 1_000_000;
    }

    @Override
    public void open(QueueCompletions c) {
        this.completions = c;
        periodStart = System.nanoTime();
        budget = maxBytes;
    }

    @Override
    public int start(DescriptorChain chain, int slot) {
        long now = System.nanoTime();
        if (now - periodStart >= periodNanos) {
            periodStart = now - (now - periodStart) % periodNanos;
            budget = maxBytes;
        }
        if (budget <= 0) {
            completions.resumeAfter(periodStart + periodNanos - now); // when the next period begins
            return NOT_NOW;
        }
        int n = filler.fill(chain, (int) Math.min(budget, VirtioRng.MAX_PER_REQUEST));
        budget -= n;
        return n;
    }
}
