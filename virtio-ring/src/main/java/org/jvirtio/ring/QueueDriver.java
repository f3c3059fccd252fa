package org.jvirtio.ring;

import java.io.IOException;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;

/**
 * The driver side of a virtqueue, either layout: {@link SplitQueueDriver} (VIRTIO 1.3, 2.7) or
 * {@link PackedQueueDriver} (2.8). What Linux's virtio_ring is to a guest: adds direct or
 * indirect chains, makes them available in one step ({@link #publish}), implements the driver's
 * half of notification suppression, and collects used buffers, never trusting what the device
 * wrote. Used by the vhost-user front-end, by tests and demos, and by device authors to test a
 * device without a VM; {@link #at} picks the layout from the negotiated features, so the same
 * test code drives either.
 *
 * <p>One thread at a time (no locks); a different thread may be the device.
 */
public interface QueueDriver {
    /** A device returned something a correct device never does. */
    final class DeviceMisbehaviourException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        public DeviceMisbehaviourException(String message) {
            super(message);
        }
    }

    /** Receives used buffers from {@link #pollUsed(UsedHandler)}. */
    @FunctionalInterface
    interface UsedHandler {
        /**
         * @param head   the chain's head descriptor id (packed: its buffer id), as {@code add} returned it
         * @param token  what was passed to {@code add}
         * @param length bytes the device wrote
         */
        void used(int head, long token, int length);
    }

    /** How a driver sleeps until the device's interrupt (or {@code millis} pass). */
    @FunctionalInterface
    interface InterruptWait {
        void await(int millis) throws IOException;
    }

    /**
     * A driver of the layout {@code features} negotiated (VIRTIO_F_RING_PACKED or not), its ring
     * placed contiguously at {@code base} and zeroed.
     *
     * @param indirectArea guest address of {@code size * maxIndirect * 16} bytes for indirect
     *                     tables (one per chain), or -1 for none
     */
    static QueueDriver at(GuestMemory memory, long base, int size, long features, long indirectArea, int maxIndirect) {
        return VirtioFeatures.has(features, VirtioFeatures.RING_PACKED)
                ? PackedQueueDriver.at(memory, base, size, features, indirectArea, maxIndirect)
                : SplitQueueDriver.at(memory, base, size, features, indirectArea, maxIndirect);
    }

    /** Bytes a ring of {@code size} entries of the layout {@code features} negotiated takes from {@link #at}'s base. */
    static long ringBytes(int size, long features) {
        return VirtioFeatures.has(features, VirtioFeatures.RING_PACKED)
                ? PackedRingLayout.place(0, size).end()
                : SplitRingLayout.place(0, size).end();
    }

    /** Whether this is the packed layout. */
    boolean packed();

    int size();

    GuestMemory memory();

    /** Guest address of the descriptor table (packed: the descriptor ring). */
    long descAddr();

    /** Guest address of the driver area (split: the available ring; packed: the driver's event suppression). */
    long availAddr();

    /** Guest address of the device area (split: the used ring; packed: the device's event suppression). */
    long usedAddr();

    /** Descriptors not in use. */
    int freeDescriptors();

    /**
     * The id the next {@code add} or {@code addIndirect} returns (split: the head descriptor;
     * packed: the buffer id), or -1 when none is free. Lets a caller place per-request data by it.
     */
    int nextHead();

    /** Chains added and not yet returned used. */
    int inFlight();

    /**
     * Adds a chain of direct descriptors: {@code readable} device-readable buffers first, then
     * the rest device-writable. Not visible to the device before {@link #publish}.
     *
     * @return the chain's id (see {@link #nextHead}), or -1 when there is no room
     */
    int add(long[] addrs, int[] lens, int count, int readable, long token);

    /**
     * Adds a chain as one descriptor pointing to an indirect table.
     *
     * @return the chain's id, or -1 when there is no room
     */
    int addIndirect(long[] addrs, int[] lens, int count, int readable, long token);

    /**
     * Makes every chain added since the last publish available to the device, in one step.
     *
     * @return whether the device wants a kick (its notification suppression says so)
     */
    boolean publish();

    /**
     * Collects used buffers the device returned, handing each to {@code handler} and freeing its
     * descriptors.
     *
     * @return how many were collected
     * @throws DeviceMisbehaviourException when the device returned something not in flight
     */
    int pollUsed(UsedHandler handler);

    /**
     * Asks for interrupts again and re-checks.
     *
     * @return true when used buffers arrived meanwhile (poll instead of sleeping)
     */
    boolean enableInterrupts();

    /** Tells the device that interrupts are not needed while the driver polls. */
    void disableInterrupts();

    /** Whether used buffers are waiting to be collected. */
    boolean hasUsed();

    /**
     * Takes the used buffers the device returned, waiting as a guest does when there are none:
     * ask for an interrupt, re-check, sleep on the interrupt; so no interrupt is missed.
     *
     * @return how many were handed to {@code handler}: 0 when none came within {@code timeoutMillis}
     */
    default int awaitUsed(UsedHandler handler, long timeoutMillis, InterruptWait interrupt) throws IOException {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000;
        while (true) {
            int n = pollUsed(handler);
            if (n > 0) {
                return n;
            }
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                return 0;
            }
            if (!enableInterrupts()) {
                interrupt.await((int) Math.min(left, Integer.MAX_VALUE));
            }
        }
    }
}
