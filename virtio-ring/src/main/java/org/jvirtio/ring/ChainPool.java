package org.jvirtio.ring;

/**
 * The chain objects of one queue: {@code size} of them, one per descriptor head that can be in
 * flight, handed out by a pop and taken back by {@code addUsed} (or {@code unpop}), so that nothing
 * is allocated per chain in steady state. A chain's buffer arrays grow to the largest chain it
 * held and are then reused; what the pool keeps grown is bounded ({@link #RETAINED_BUFFERS}): a
 * guest that once sent every chain at the longest length would otherwise leave 16 bytes per
 * buffer times 1024 times 1024 (16 MiB) behind on one queue. Past the bound, a long chain returned
 * to the pool gives its arrays back. Owned by its queue's thread.
 */
final class ChainPool {
    /**
     * Buffer entries (16 bytes each) the pool keeps grown, all chains together: 1 MiB, room for
     * 128 chains of 512 buffers, well above what a guest's large I/O keeps in flight.
     */
    static final int RETAINED_BUFFERS = 65_536;

    private final int queue;
    private RingChain[] chains = new RingChain[0];
    private int[] free = new int[0];
    private boolean[] inUse = new boolean[0];
    private int freeTop;
    /** Buffer entries the chains hold grown beyond their initial capacity, all together. */
    private long retained;

    ChainPool(int queue) {
        this.queue = queue;
    }

    /** Makes {@code n} chains available (a ring of {@code n} entries), all free; nothing may be in flight. */
    void reset(int n) {
        if (inFlight() != 0) {
            throw new IllegalStateException("queue " + queue + " reconfigured with " + inFlight() + " chains in flight");
        }
        if (chains.length != n) {
            chains = new RingChain[n];
            for (int i = 0; i < n; i++) {
                chains[i] = new RingChain(queue, i);
            }
            free = new int[n];
            inUse = new boolean[n];
            retained = 0;
        }
        for (int i = 0; i < n; i++) {
            free[i] = n - 1 - i;
            inUse[i] = false;
        }
        freeTop = n;
    }

    /** Chains handed out and not yet returned. */
    int inFlight() {
        return chains.length - freeTop;
    }

    /** A free chain to walk into, or null when every chain is in flight. Hand it out or put it back. */
    RingChain take() {
        return freeTop == 0 ? null : chains[free[--freeTop]];
    }

    /** {@code chain}, taken, was walked (its arrays grew by {@code grown} entries) and is handed out. */
    void handOut(RingChain chain, int grown) {
        retained += grown;
        inUse[chain.slot] = true;
    }

    /** {@code chain}, taken, is not handed out after all (its walk failed); its arrays grew by {@code grown} entries. */
    void putBack(RingChain chain, int grown) {
        retained += grown;
        free[freeTop++] = chain.slot;
    }

    /** Whether {@code chain} is one of this pool's and handed out. */
    boolean handedOut(Object chain) {
        return chain instanceof RingChain rc && rc.slot >= 0 && rc.slot < chains.length && chains[rc.slot] == rc && inUse[rc.slot];
    }

    /** A handed-out chain comes back (used, or put back into the ring); past the bound its arrays go. */
    void give(RingChain chain) {
        int slot = chain.slot;
        inUse[slot] = false;
        free[freeTop++] = slot;
        if (retained > RETAINED_BUFFERS && chain.bufferCapacity() > RingChain.KEEP_BUFFERS) {
            retained -= chain.trimBuffers();
        }
    }

    /** Buffer entries the chains hold grown past their initial capacity (bounded near {@link #RETAINED_BUFFERS}). */
    long retained() {
        return retained;
    }
}
