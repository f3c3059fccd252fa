package org.jvirtio.api;

/**
 * The device side of one virtqueue, as a device sees it: pop chains, hand them back used,
 * publish, and decide whether to interrupt. Implemented by the split ring in
 * {@code org.jvirtio.ring}; one thread owns a queue and calls all of these (no locks).
 *
 * <p>A queue that finds the guest breaking the ring's rules marks itself broken: from then on
 * {@link #pop()} returns null and nothing more is written to the ring; the owner learns the
 * reason through the listener it registered with the implementation and sets
 * DEVICE_NEEDS_RESET.
 */
public interface Virtqueue {
    /** Queue index within its device. */
    int index();

    /** Number of entries (a power of two). */
    int size();

    /**
     * The next available chain, or null when the ring is empty (as of the last read of
     * {@code avail->idx}) or the queue is broken. Reads {@code avail->idx} only when the chains
     * seen by the previous read are used up: call it in a loop until null.
     */
    DescriptorChain pop();

    /**
     * Puts back a chain untaken: the next pop returns the same head again, and the driver never
     * sees it used. For a device that has nothing for the chain yet (no input to fill it with).
     * Several chains may be put back, the most recent pop first (a network device that took
     * receive buffers for a frame and found too few, as vhost-net's discard does); each while it
     * is in flight, not returned with {@link #addUsed} and nothing popped after it returned, and
     * before the ring stops.
     *
     * @throws IllegalStateException for any other chain (nothing changes then)
     */
    void unpop(DescriptorChain chain);

    /**
     * Returns a chain to the driver: writes a used element (head id, bytes written) without
     * publishing it yet. The chain object is recycled by this call.
     *
     * @throws IllegalArgumentException when {@code writtenLength} exceeds the chain's writable
     *                                  bytes (nothing changes then)
     */
    void addUsed(DescriptorChain chain, int writtenLength);

    /**
     * Returns the first {@code n} of {@code chains}, in that order, so that the driver sees none
     * of them before all are written: a frame over merged receive buffers, where the driver reads
     * num_buffers in the first and takes the others right after it. As {@link #addUsed} for each
     * (the split ring's used elements are published together by {@link #publishUsed} anyway); the
     * packed ring writes the first used descriptor last, since each is visible once written.
     * Every chain and length is checked before anything is written.
     *
     * @throws IllegalArgumentException or IllegalStateException as {@link #addUsed}, for any of
     *                                  them (nothing changes then)
     */
    default void addUsedTogether(DescriptorChain[] chains, int[] writtenLengths, int n) {
        for (int i = 0; i < n; i++) {
            addUsed(chains[i], writtenLengths[i]);
        }
    }

    /**
     * Publishes all used elements added since the last publish with one release-store of
     * {@code used->idx}.
     *
     * @return whether the driver wants an interrupt for what was just published (EVENT_IDX's
     *         {@code vring_need_event} or the NO_INTERRUPT flag)
     */
    boolean publishUsed();

    /**
     * Asks the driver for kicks again and re-checks the ring.
     *
     * @return true when chains became available meanwhile: the caller must pop again instead of
     *         sleeping, or it would miss the kick the driver did not send
     */
    boolean enableNotifications();

    /** Tells the driver that kicks are not needed while the device is busy polling. */
    void disableNotifications();

    /**
     * Chains made available and not yet popped, as of the last read of {@code avail->idx} (read
     * again when none are left): 0 when the ring is empty, broken or not running. For a busy-poll
     * looking at a queue it is not serving.
     */
    int available();

    /** Whether a ring violation stopped this queue. */
    boolean isBroken();

    /** Chains popped and not yet returned with {@link #addUsed}. */
    int inFlight();
}
