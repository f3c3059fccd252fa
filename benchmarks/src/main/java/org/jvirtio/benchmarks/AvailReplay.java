package org.jvirtio.benchmarks;

import java.lang.foreign.MemorySegment;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.ring.SplitRingLayout;

import static org.jvirtio.api.GuestMemory.LE_U16;
import static org.jvirtio.api.GuestMemory.LE_U64;

/**
 * The driver's part of a ring benchmark reduced to what it must do: chains built once, their
 * heads offered again and again (one avail entry each, then the index), in a round. Optionally
 * each chain's descriptors are written again before its head is offered, as Linux's split driver
 * does for every request (virtqueue_add_split writes each descriptor's address, then its length,
 * flags and next): the device then reads descriptors just written, as a packed device always does.
 */
final class AvailReplay {
    private final MemorySegment avail;
    private final int[] heads;
    private final int size;
    /** Where descriptors are written again, or null (written once, never again). */
    private final MemorySegment target;
    /** Per offered head: its chain's descriptor indices, addresses and len/flags/next words. */
    private final int[][] descIndex;
    private final long[][] descAddr;
    private final long[][] descWord;
    private int availIdx;
    private int next;

    /** Replays {@code heads} into the avail ring at {@code availAddr} of a ring of {@code size}. */
    AvailReplay(GuestMemory memory, long availAddr, int size, int[] heads) {
        this(memory, availAddr, size, heads, 0, -1);
    }

    /**
     * As above, and before each head is offered its chain's descriptors (as they lie now in the
     * table at {@code tableAddr}) are written again into the table at {@code rewriteAddr} (-1: not).
     */
    AvailReplay(GuestMemory memory, long availAddr, int size, int[] heads, long tableAddr, long rewriteAddr) {
        this.avail = memory.slice(availAddr, SplitRingLayout.availBytes(size));
        this.size = size;
        this.heads = heads;
        this.target = rewriteAddr < 0 ? null : memory.slice(rewriteAddr, SplitRingLayout.descTableBytes(size));
        this.descIndex = new int[heads.length][];
        this.descAddr = new long[heads.length][];
        this.descWord = new long[heads.length][];
        if (target == null) {
            return;
        }
        MemorySegment table = memory.slice(tableAddr, SplitRingLayout.descTableBytes(size));
        for (int h = 0; h < heads.length; h++) {
            int[] idx = new int[size];
            int n = 0;
            int d = heads[h];
            while (true) {
                idx[n++] = d;
                long word = table.get(LE_U64, 16L * d + 8);
                if ((((int) (word >>> 32)) & SplitRingLayout.DESC_F_NEXT) == 0) {
                    break;
                }
                d = (int) (word >>> 48);
            }
            descIndex[h] = java.util.Arrays.copyOf(idx, n);
            descAddr[h] = new long[n];
            descWord[h] = new long[n];
            for (int i = 0; i < n; i++) {
                descAddr[h][i] = table.get(LE_U64, 16L * idx[i]);
                descWord[h][i] = table.get(LE_U64, 16L * idx[i] + 8);
            }
        }
    }

    /** Offers the next {@code count} heads and publishes the index once. */
    void offer(int count) {
        for (int i = 0; i < count; i++) {
            int h = next;
            if (target != null) {
                int[] idx = descIndex[h];
                long[] a = descAddr[h];
                long[] w = descWord[h];
                for (int k = 0; k < idx.length; k++) {
                    long b = 16L * idx[k];
                    target.set(LE_U64, b, a[k]);
                    target.set(LE_U64, b + 8, w[k]);
                }
            }
            avail.set(LE_U16, 4 + 2L * (availIdx & (size - 1)), (short) heads[h]);
            next = next + 1 == heads.length ? 0 : next + 1;
            availIdx = (availIdx + 1) & 0xffff;
        }
        avail.set(LE_U16, 2, (short) availIdx);
    }
}
