package org.jvirtio.benchmarks;

import java.lang.foreign.MemorySegment;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.ring.SplitRingLayout;

import static org.jvirtio.api.GuestMemory.LE_U16;

/**
 * The driver's part of a ring benchmark reduced to what it must do: chains built once, their
 * heads offered again and again (one avail entry each, then the index), in a round.
 */
final class AvailReplay {
    private final MemorySegment avail;
    private final int[] heads;
    private final int size;
    private int availIdx;
    private int next;

    /** Replays {@code heads} into the avail ring at {@code availAddr} of a ring of {@code size}. */
    AvailReplay(GuestMemory memory, long availAddr, int size, int[] heads) {
        this.avail = memory.slice(availAddr, SplitRingLayout.availBytes(size));
        this.size = size;
        this.heads = heads;
    }

    /** Offers the next {@code count} heads and publishes the index once. */
    void offer(int count) {
        for (int i = 0; i < count; i++) {
            avail.set(LE_U16, 4 + 2L * (availIdx & (size - 1)), (short) heads[next]);
            next = next + 1 == heads.length ? 0 : next + 1;
            availIdx = (availIdx + 1) & 0xffff;
        }
        avail.set(LE_U16, 2, (short) availIdx);
    }
}
