package org.jvirtio.host;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueStats;

/**
 * A queue engine's request slots: one per entry of the ring, each holding the chain the device
 * was given with it until the device completes it, the free ones on a stack. The one count of the
 * requests a queue has in flight, which it mirrors into the queue's {@link QueueStats}. Nothing is
 * allocated per request. The queue's thread only.
 */
final class Slots {
    /** The chain each slot holds, null when the slot is free. */
    private final DescriptorChain[] chains;
    private final int[] free;
    /** When each slot's chain was taken (the clock of its batch), for the latency histogram. */
    private final long[] takenAt;
    private int freeTop;
    private final QueueStats stats;

    /** {@code n} slots, all free. */
    Slots(int n, QueueStats stats) {
        this.chains = new DescriptorChain[n];
        this.free = new int[n];
        this.takenAt = new long[n];
        for (int i = 0; i < n; i++) {
            free[i] = n - 1 - i;
        }
        this.freeTop = n;
        this.stats = stats;
    }

    /** Whether a slot is free for another chain. */
    boolean anyFree() {
        return freeTop > 0;
    }

    /** Whether no chain is in flight. */
    boolean allFree() {
        return freeTop == chains.length;
    }

    /** Chains given to the device and not yet completed. */
    int inFlight() {
        return chains.length - freeTop;
    }

    /** Gives {@code c}, taken at {@code now}, a free slot (one must be free: {@link #anyFree}); returns it. */
    int take(DescriptorChain c, long now) {
        int slot = free[--freeTop];
        chains[slot] = c;
        takenAt[slot] = now;
        stats.inFlight(inFlight());
        return slot;
    }

    /** The chain {@code slot} holds, or null (free, or not a slot at all). */
    DescriptorChain chain(int slot) {
        return slot >= 0 && slot < chains.length ? chains[slot] : null;
    }

    /** Frees {@code slot}, which holds a chain put back untouched (not a request served: no latency). */
    void putBack(int slot) {
        chains[slot] = null;
        free[freeTop++] = slot;
        stats.inFlight(inFlight());
    }

    /** Frees {@code slot}, whose chain completed at {@code now}; counts its latency and returns it. */
    long release(int slot, long now) {
        long latency = now - takenAt[slot];
        stats.addLatency(latency);
        chains[slot] = null;
        free[freeTop++] = slot;
        stats.inFlight(inFlight());
        return latency;
    }
}
