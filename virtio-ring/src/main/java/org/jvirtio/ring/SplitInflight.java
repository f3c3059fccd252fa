package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * One split queue's part of the vhost-user inflight region (vhost-user.rst, "Inflight I/O
 * tracking"): shared memory the front-end keeps across a backend's death, in which the queue
 * marks every head it took from the ring and clears it once its used element is published, so
 * that a restarted backend resubmits exactly the requests that never completed, in the order they
 * were taken. The layout is the spec's {@code QueueRegionSplit}:
 *
 * <pre>
 *   u64 features (0)   u16 version (1; 0: not yet used)   u16 desc_num   u16 last_batch_head   u16 used_idx
 *   desc[desc_num]: { u8 inflight; u8 padding[5]; u16 next; u64 counter }   (16 bytes each)
 * </pre>
 *
 * <p>The stores that matter if the process dies between any two of them are ordered explicitly
 * (each site says what it pairs with); a reader is the next backend, after this one is gone, or a
 * jcstress observer. The front-end may have scribbled over the region: {@link #attach} checks
 * everything it reads and, when the region is inconsistent, starts it afresh (nothing resubmitted,
 * one log line by the caller) rather than trust it. No allocation and no syscall per request.
 */
public final class SplitInflight {
    public static final int VERSION = 1;
    static final long FEATURES = 0;
    static final long VERSION_OFF = 8;
    static final long DESC_NUM = 10;
    static final long LAST_BATCH_HEAD = 12;
    static final long USED_IDX = 14;
    static final long DESC = 16;
    static final long DESC_SIZE = 16;
    static final long D_INFLIGHT = 0;
    static final long D_NEXT = 6;
    static final long D_COUNTER = 8;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final VarHandle FLAG = ValueLayout.JAVA_BYTE.varHandle();
    private static final VarHandle USED = ValueLayout.JAVA_SHORT.withOrder(java.nio.ByteOrder.nativeOrder()).varHandle();

    private final MemorySegment r;
    /** Entries of the region (desc_num): the queue size the front-end asked for. */
    private final int size;
    /** The ring's size, which a driver may make smaller than desc_num: heads are below it. */
    private final int ringSize;
    private long counter;
    /** Heads added to the used ring since the last publish: the batch {@link #published} clears. */
    private final int[] batch;
    private int batchCount;
    /** Heads to serve again, in the order they were first taken. */
    private final int[] resubmit;
    private int resubmitCount;
    private int resubmitNext;

    private SplitInflight(MemorySegment r, int size, int ringSize) {
        this.r = r;
        this.size = size;
        this.ringSize = ringSize;
        this.batch = new int[size];
        this.resubmit = new int[size];
    }

    /** Bytes of one queue's region for a queue of {@code queueSize} entries (64-byte aligned, as libvhost-user sizes it). */
    public static long queueRegionSize(int queueSize) {
        return (DESC + DESC_SIZE * queueSize + 63) & ~63L;
    }

    /** What {@link #attach} found. */
    public record Attached(SplitInflight tracker, int resubmitted, String inconsistency) {
    }

    /**
     * Takes over {@code region} for a queue of {@code size} entries whose used ring says
     * {@code ringUsedIdx}: repairs the last batch if this backend's predecessor died between
     * publishing it and clearing it, and collects the heads still in flight, in the order they
     * were taken. A fresh region (version 0) is initialized. An inconsistent one (wrong version,
     * size or features, a flag other than 0 or 1, a last batch that does not add up, counters that
     * repeat) is initialized too, and {@link Attached#inconsistency} says why.
     */
    public static Attached attach(MemorySegment region, int size, int ringUsedIdx) {
        return attach(region, size, size, ringUsedIdx);
    }

    /**
     * As {@link #attach(MemorySegment, int, int)} for a region of {@code descNum} entries (the
     * queue size the front-end made it for) and a ring of {@code ringSize} entries, which the
     * guest's driver may have made smaller (Linux does when memory is short); every head in
     * flight must be below {@code ringSize}.
     */
    public static Attached attach(MemorySegment region, int descNum, int ringSize, int ringUsedIdx) {
        if (region.byteSize() < queueRegionSize(descNum) || ringSize > descNum) {
            throw new IllegalArgumentException("inflight region of " + region.byteSize() + " bytes (" + descNum
                    + " entries) for a ring of " + ringSize);
        }
        SplitInflight t = new SplitInflight(region, descNum, ringSize);
        int version = Short.toUnsignedInt(region.get(U16, VERSION_OFF));
        if (version == 0) {
            t.initialize();
            return new Attached(t, 0, null);
        }
        String why = t.recover(version, ringUsedIdx & 0xffff);
        if (why != null) {
            t.initialize();
            return new Attached(t, 0, why);
        }
        return new Attached(t, t.resubmitCount, null);
    }

    private void initialize() {
        r.asSlice(0, queueRegionSize(size)).fill((byte) 0);
        r.set(U16, DESC_NUM, (short) size);
        r.set(U16, VERSION_OFF, (short) VERSION);
        counter = 0;
        resubmitCount = 0;
        resubmitNext = 0;
    }

    private String recover(int version, int ringUsed) {
        if (version != VERSION) {
            return "version " + version;
        }
        long features = r.get(U64, FEATURES);
        if (features != 0) {
            return "features 0x" + Long.toHexString(features);
        }
        int descNum = Short.toUnsignedInt(r.get(U16, DESC_NUM));
        if (descNum != size) {
            return "desc_num " + descNum + " for a queue of " + size;
        }
        for (int i = 0; i < size; i++) {
            int f = r.get(ValueLayout.JAVA_BYTE, desc(i) + D_INFLIGHT);
            if (f != 0 && f != 1) {
                return "descriptor " + i + " inflight flag " + f;
            }
        }
        int regionUsed = Short.toUnsignedInt(r.get(U16, USED_IDX));
        if (regionUsed != ringUsed) {
            // The predecessor published a batch and died before clearing it: clear it now.
            int n = (ringUsed - regionUsed) & 0xffff;
            if (n > ringSize) {
                return "a last batch of " + n + " (used_idx " + regionUsed + ", ring " + ringUsed + ") in a queue of " + size;
            }
            int h = Short.toUnsignedInt(r.get(U16, LAST_BATCH_HEAD));
            for (int k = 0; k < n; k++) {
                if (h >= size) {
                    return "last batch entry " + k + " is head " + h + ", out of range";
                }
                r.set(ValueLayout.JAVA_BYTE, desc(h) + D_INFLIGHT, (byte) 0);
                h = Short.toUnsignedInt(r.get(U16, desc(h) + D_NEXT));
            }
            r.set(U16, USED_IDX, (short) ringUsed);
        }
        long[] keyed = new long[size];
        long[] counters = new long[size];
        int n = 0;
        for (int i = 0; i < size; i++) {
            if (r.get(ValueLayout.JAVA_BYTE, desc(i) + D_INFLIGHT) == 1) {
                if (i >= ringSize) {
                    return "head " + i + " in flight, outside a ring of " + ringSize;
                }
                counters[n] = r.get(U64, desc(i) + D_COUNTER);
                keyed[n] = i;
                n++;
            }
        }
        Integer[] order = new Integer[n];
        for (int k = 0; k < n; k++) {
            order[k] = k;
        }
        Arrays.sort(order, (a, b) -> Long.compareUnsigned(counters[a], counters[b]));
        long max = -1;
        for (int k = 0; k < n; k++) {
            long c = counters[order[k]];
            if (k > 0 && c == counters[order[k - 1]]) {
                return "two heads taken at the same count " + Long.toUnsignedString(c);
            }
            resubmit[k] = (int) keyed[order[k]];
            max = c;
        }
        resubmitCount = n;
        counter = n == 0 ? 0 : max + 1;
        return null;
    }

    private static long desc(int head) {
        return DESC + DESC_SIZE * head;
    }

    /** Heads still in flight when the predecessor died, left to serve again. */
    int resubmitLeft() {
        return resubmitCount - resubmitNext;
    }

    /** The next head to serve again, or -1. */
    int nextResubmit() {
        return resubmitNext < resubmitCount ? resubmit[resubmitNext++] : -1;
    }

    /** A head taken from the avail ring: marked in flight, with the order it was taken in. */
    void popped(int head) {
        r.set(U64, desc(head) + D_COUNTER, counter++);
        // Release: the counter is in place before the flag that makes the next backend read it.
        FLAG.setRelease(r, desc(head) + D_INFLIGHT, (byte) 1);
    }

    /**
     * The head {@link #popped} last goes back to the avail ring untaken: its flag is cleared (a
     * successor must not resubmit it: the driver still offers it at the avail index the queue
     * steps back to) and its count is given back.
     */
    void unpopped(int head) {
        FLAG.setRelease(r, desc(head) + D_INFLIGHT, (byte) 0);
        counter--;
    }

    /** The head {@link #nextResubmit} returned last is to be resubmitted again (still flagged, as the predecessor left it). */
    void unresubmit() {
        if (resubmitNext == 0) {
            throw new IllegalStateException("nothing was resubmitted");
        }
        resubmitNext--;
    }

    /** A used element written (not yet published): the head joins the last batch list. */
    void used(int head) {
        r.set(U16, desc(head) + D_NEXT, r.get(U16, LAST_BATCH_HEAD));
        r.set(U16, LAST_BATCH_HEAD, (short) head);
        batch[batchCount++] = head;
    }

    /**
     * Called right after the used index {@code usedIdx} was stored for the batch: clears the
     * batch's flags, then records the index. The list and last_batch_head were written before
     * the used index (whose store is a release, SplitQueue.publish); here a store-store fence
     * keeps the flags after the used index (a flag cleared before it was published would lose the
     * request if this process died in between), and the region's used_idx is stored with release
     * semantics after the flags (it says the batch is fully cleared). Pairs with the next
     * backend's {@link #attach}, which reads used_idx first.
     */
    void published(int usedIdx) {
        if (batchCount == 0) {
            return;
        }
        VarHandle.storeStoreFence();
        for (int k = 0; k < batchCount; k++) {
            r.set(ValueLayout.JAVA_BYTE, desc(batch[k]) + D_INFLIGHT, (byte) 0);
        }
        batchCount = 0;
        USED.setRelease(r, USED_IDX, (short) usedIdx);
    }

    /** This queue's region, for tests. */
    MemorySegment region() {
        return r;
    }
}
