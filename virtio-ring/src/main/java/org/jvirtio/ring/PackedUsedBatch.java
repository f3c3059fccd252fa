package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.DirtyLog;

import static org.jvirtio.ring.PackedRingLayout.DESC_LEN;
import static org.jvirtio.ring.PackedRingLayout.DESC_SIZE;

/**
 * A packed queue's used descriptors between {@code addUsed} and {@code publishUsed}: kept here
 * and written to the ring together at the publish, the first (at the oldest used position) last.
 *
 * <p>Written one by one, each used descriptor would be visible to the driver at once, and a
 * device that keeps finding available descriptors would write used ones a few slots behind the
 * driver's writes of new ones: both CPUs writing the same cache lines (four descriptors to a
 * line) for every request. Measured with the driver and the device on two CPUs
 * ({@code CrossCpuRing}, 32 requests in flight), that chase cost up to 1.5x split's time per
 * request and varied 2x from run to run; written at the publish, the two sides take turns as
 * they do on a split ring, and packed is level with split. It is also what {@code publishUsed}
 * promises for both layouts (nothing the driver can see before it), and groups of used
 * descriptors ({@code addUsedTogether}: a frame over merged receive buffers) become visible at
 * once without more: the driver reads the ring in order, and the oldest is written last (in
 * order with the inflight region, whose protocol needs it: see {@link #writeTo}).
 *
 * <p>Each is one 64-bit release store of len, id and flags, as before: the driver that sees the
 * flags (with its read barrier after them) sees the length and id, and the buffers the device
 * wrote before. The owner thread alone uses this.
 */
final class PackedUsedBatch {
    private static final VarHandle U64 = java.lang.foreign.ValueLayout.JAVA_LONG.varHandle();

    private long[] words = new long[0];
    private int[] positions = new int[0];
    private int[] ids = new int[0];
    private int count;

    /** Room for a ring of {@code size} descriptors (at most that many chains are in flight), nothing kept. */
    void reset(int size) {
        if (words.length < size) {
            words = new long[size];
            positions = new int[size];
            ids = new int[size];
        }
        count = 0;
    }

    /** Keeps the used descriptor {@code word} (len, buffer {@code id}, flags) for ring position {@code position}. */
    void add(int position, long word, int id) {
        words[count] = word;
        ids[count] = id;
        positions[count++] = position;
    }

    boolean isEmpty() {
        return count == 0;
    }

    /**
     * No room for another: more chains came back since the publish than the ring holds, which
     * only a driver that offers a buffer id again before seeing it used can cause (the device
     * released the id when it returned the chain).
     */
    boolean full() {
        return count == words.length;
    }

    /** Forgets what is kept (the ring broke or stopped: nothing more is written to it). */
    void clear() {
        count = 0;
    }

    /**
     * Writes what is kept into {@code ring} (at guest address {@code ringAddress}, marked in
     * {@code log} when one is set, after each store). Without the inflight region the oldest is
     * written last, so the driver sees them all at once; with it ({@code track}), in ring order,
     * each inside the region's return protocol ({@link PackedInflight#returning}, the store,
     * {@link PackedInflight#returned}), since a successor decides from the descriptor at the
     * oldest used position whether a return happened. A fault in guest memory leaves nothing kept
     * and is thrown (InternalError) for the queue to break.
     */
    void writeTo(MemorySegment ring, long ringAddress, DirtyLog log, PackedInflight track) {
        int n = count;
        if (n == 0) {
            return;
        }
        count = 0;
        if (track != null) {
            for (int i = 0; i < n; i++) {
                track.returning(ids[i]);
                write(ring, ringAddress, log, positions[i], words[i]);
                track.returned(ids[i]);
            }
            return;
        }
        for (int i = 1; i < n; i++) {
            write(ring, ringAddress, log, positions[i], words[i]);
        }
        write(ring, ringAddress, log, positions[0], words[0]);
    }

    private static void write(MemorySegment ring, long ringAddress, DirtyLog log, int position, long word) {
        long base = (long) position * DESC_SIZE;
        U64.setRelease(ring, base + DESC_LEN, word);
        if (log != null) {
            log.mark(ringAddress + base, DESC_SIZE); // after the store: a sync in between copies it again
        }
    }
}
