package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.Arrays;
import java.util.function.IntUnaryOperator;

/**
 * One packed queue's part of the vhost-user inflight region (vhost-user.rst, "Inflight I/O
 * tracking", {@code QueueRegionPacked}): what {@link SplitInflight} is for a split ring, in the
 * layout the spec gives packed rings.
 *
 * <pre>
 *   u64 features (0)  u16 version (1)  u16 desc_num  u16 free_head  u16 old_free_head
 *   u16 used_idx  u16 old_used_idx  u8 used_wrap_counter  u8 old_used_wrap_counter  u8 padding[7]  (32 bytes)
 *   desc[desc_num]: { u8 inflight; u8 padding; u16 next; u16 last; u16 num; u64 counter;
 *                     u16 id; u16 flags; u32 len; u64 addr }                              (32 bytes each)
 * </pre>
 *
 * <p>A packed ring needs more than flags: the device writes used descriptors over the ring
 * positions of chains still in flight (the used position trails), so a successor cannot read
 * those chains from the ring again. Each descriptor taken is copied into an entry from a free
 * list; a chain's entries are linked by {@code next}, its head entry holds {@code inflight},
 * {@code num}, {@code last} and the order it was taken in ({@code counter}). {@code free_head},
 * {@code used_idx} and {@code used_wrap_counter} change as the queue works; their {@code old_}
 * copies are the last consistent point, and a successor commits or rolls back what lies between
 * (the spec's reconnect steps: it reads the used flags at {@code old_used_idx} to tell whether
 * the driver may have seen the used descriptor).
 *
 * <p>Beyond the spec: a successor rebuilds the free list from every entry no chain holds (so
 * nothing leaks however its predecessor died), and recovers the ring's positions from the region
 * alone: used from {@code used_idx}, avail as used plus the descriptors still in flight. QEMU
 * cannot give them after a backend crash (it has no packed index in guest memory to read back,
 * and sends the state it gave at the ring's start).
 *
 * <p>The links the queue follows are kept here ({@code next}, {@code last}, {@code num} and the
 * entry of each buffer id), written through to the region, never read back from it while the
 * queue runs: the front-end can scribble on shared memory but not steer the queue. {@link #attach}
 * checks everything it reads and starts an inconsistent region afresh. One thread, the queue's;
 * no allocation and no syscall per request.
 */
public final class PackedInflight {
    public static final int VERSION = 1;
    static final long FEATURES = 0;
    static final long VERSION_OFF = 8;
    static final long DESC_NUM = 10;
    static final long FREE_HEAD = 12;
    static final long OLD_FREE_HEAD = 14;
    static final long USED_IDX = 16;
    static final long OLD_USED_IDX = 18;
    static final long USED_WRAP = 20;
    static final long OLD_USED_WRAP = 21;
    static final long DESC = 32;
    static final long DESC_SIZE = 32;
    static final long D_INFLIGHT = 0;
    static final long D_NEXT = 2;
    static final long D_LAST = 4;
    static final long D_NUM = 6;
    static final long D_COUNTER = 8;
    static final long D_ID = 16;
    static final long D_FLAGS = 18;
    static final long D_LEN = 20;
    static final long D_ADDR = 24;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;
    /** The region is in the host's byte order (QEMU maps it as a C struct): fields are packed into one store on little-endian hosts. */
    private static final boolean LITTLE_ENDIAN = java.nio.ByteOrder.nativeOrder() == java.nio.ByteOrder.LITTLE_ENDIAN;
    private static final VarHandle BYTE = ValueLayout.JAVA_BYTE.varHandle();
    private static final VarHandle SHORT = ValueLayout.JAVA_SHORT.withOrder(java.nio.ByteOrder.nativeOrder()).varHandle();
    /** free_head and old_free_head together (offset 12, 4-byte aligned): one release store. */
    private static final VarHandle INT = ValueLayout.JAVA_INT.withOrder(java.nio.ByteOrder.nativeOrder()).varHandle();

    final MemorySegment r;
    /** Entries of the region: the queue size the front-end made it for. */
    final int descNum;
    /** The ring's size (at most descNum): buffer ids and used positions are below it. */
    final int ringSize;
    /** Per entry: the next entry (free list, or the rest of a chain); descNum ends a list. */
    final int[] next;
    /** Per head entry: its chain's last entry and length. */
    final int[] last;
    final int[] num;
    /** Per buffer id: the head entry of its chain while in flight. */
    final int[] entryOf;
    /** Per head entry of a chain to resubmit: its buffer id, as {@link #attach} checked it. */
    final int[] idOf;
    int freeHead;
    int usedIdx;
    boolean usedWrap;
    /**
     * What the region's old_free_head and old_used_idx hold (only this queue writes them): header
     * fields that lie side by side are written in one store, the unchanged ones with the values
     * they have.
     */
    private int oldFreeHead;
    private int oldUsedIdx;
    long counter;
    /** The chain being recorded ({@link #begin}): the entry for its next descriptor, its last, its length. */
    private int cursor;
    private int lastEntry;
    private int count;
    /** Head entries to serve again, in the order they were first taken. */
    final int[] resubmit;
    int resubmitCount;
    private int resubmitNext;

    private PackedInflight(MemorySegment r, int descNum, int ringSize) {
        this.r = r;
        this.descNum = descNum;
        this.ringSize = ringSize;
        this.next = new int[descNum];
        this.last = new int[descNum];
        this.num = new int[descNum];
        this.entryOf = new int[ringSize];
        this.idOf = new int[descNum];
        this.resubmit = new int[descNum];
        Arrays.fill(entryOf, -1);
    }

    /** Bytes of one queue's region for a queue of {@code queueSize} entries (64-byte aligned, as DPDK sizes it). */
    public static long queueRegionSize(int queueSize) {
        return (DESC + DESC_SIZE * queueSize + 63) & ~63L;
    }

    /**
     * What {@link #attach} found.
     *
     * @param usedState  the ring's used position and wrap counter recovered from the region, or -1
     *                   when it holds none (fresh, or refused)
     * @param availState the avail position: used plus the descriptors still in flight, or -1
     */
    record Attached(PackedInflight tracker, int resubmitted, String inconsistency, int usedState, int availState) {
        /** What to log when the region's ring state differs from the front-end's base ({@code availState}, {@code usedState}), or null. */
        String note(int baseAvail, int baseUsed) {
            if (usedState < 0 || (usedState == baseUsed && availState == baseAvail)) {
                return null;
            }
            return "ring state from the inflight region: avail " + describe(availState) + ", used " + describe(usedState)
                    + " (the front-end's base said avail " + describe(baseAvail) + ", used " + describe(baseUsed) + ")";
        }

        private static String describe(int state) {
            return (state & ~PackedRingLayout.WRAP_BIT) + "/" + ((state & PackedRingLayout.WRAP_BIT) != 0 ? 1 : 0);
        }
    }

    /**
     * Takes over {@code region} ({@code descNum} entries) for a packed ring of {@code ringSize}
     * whose used state is {@code usedState} now (the front-end's base; where a fresh or refused
     * region starts). {@code ringFlags} reads the flags of a ring descriptor, for the commit or
     * rollback of the predecessor's last used descriptor.
     */
    static Attached attach(MemorySegment region, int descNum, int ringSize, IntUnaryOperator ringFlags, int usedState) {
        if (region.byteSize() < queueRegionSize(descNum) || ringSize > descNum) {
            throw new IllegalArgumentException("inflight region of " + region.byteSize() + " bytes (" + descNum
                    + " entries) for a packed ring of " + ringSize);
        }
        PackedInflight t = new PackedInflight(region, descNum, ringSize);
        int version = Short.toUnsignedInt(region.get(U16, VERSION_OFF));
        if (version == 0) {
            t.initialize(usedState);
            return new Attached(t, 0, null, -1, -1);
        }
        String why = PackedInflightRecovery.recover(t, version, ringFlags);
        if (why != null) {
            PackedInflight fresh = new PackedInflight(region, descNum, ringSize);
            fresh.initialize(usedState);
            return new Attached(fresh, 0, why, -1, -1);
        }
        int inFlight = 0;
        for (int k = 0; k < t.resubmitCount; k++) {
            inFlight += t.num[t.resubmit[k]];
        }
        int avail = t.usedIdx + inFlight;
        boolean availWrap = t.usedWrap;
        if (avail >= ringSize) {
            avail -= ringSize;
            availWrap = !availWrap;
        }
        return new Attached(t, t.resubmitCount, null, PackedRingLayout.offWrap(t.usedIdx, t.usedWrap),
                PackedRingLayout.offWrap(avail, availWrap));
    }

    private void initialize(int usedState) {
        r.asSlice(0, queueRegionSize(descNum)).fill((byte) 0);
        r.set(U16, DESC_NUM, (short) descNum);
        for (int e = 0; e < descNum; e++) {
            next[e] = e + 1;
            r.set(U16, desc(e) + D_NEXT, (short) (e + 1));
        }
        freeHead = 0;
        usedIdx = Math.min(usedState & ~PackedRingLayout.WRAP_BIT, ringSize - 1);
        usedWrap = (usedState & PackedRingLayout.WRAP_BIT) != 0;
        writeHeader();
        counter = 0;
        resubmitCount = 0;
        resubmitNext = 0;
        // Release: the region is whole before it says it is in use.
        SHORT.setRelease(r, VERSION_OFF, (short) VERSION);
    }

    void writeHeader() {
        oldFreeHead = freeHead;
        oldUsedIdx = usedIdx;
        r.set(U16, FREE_HEAD, (short) freeHead);
        r.set(U16, OLD_FREE_HEAD, (short) freeHead);
        r.set(ValueLayout.JAVA_BYTE, USED_WRAP, (byte) (usedWrap ? 1 : 0));
        r.set(ValueLayout.JAVA_BYTE, OLD_USED_WRAP, (byte) (usedWrap ? 1 : 0));
        r.set(U16, USED_IDX, (short) usedIdx);
        r.set(U16, OLD_USED_IDX, (short) usedIdx);
    }

    int u16(long off) {
        return Short.toUnsignedInt(r.get(U16, off));
    }

    int u8(long off) {
        return Byte.toUnsignedInt(r.get(ValueLayout.JAVA_BYTE, off));
    }

    static long desc(int entry) {
        return DESC + DESC_SIZE * entry;
    }

    /** Chains still in flight when the predecessor died, left to serve again. */
    int resubmitLeft() {
        return resubmitCount - resubmitNext;
    }

    /** The head entry of the next chain to serve again, or -1. */
    int nextResubmit() {
        return resubmitNext < resubmitCount ? resubmit[resubmitNext++] : -1;
    }

    /** The chain {@link #nextResubmit} returned last is to be resubmitted again. */
    void unresubmit() {
        if (resubmitNext == 0) {
            throw new IllegalStateException("nothing was resubmitted");
        }
        resubmitNext--;
    }

    /** Descriptors of the chain at head entry {@code e}. */
    int chainLength(int e) {
        return num[e];
    }

    /** The entry after {@code e} in its chain. */
    int nextEntry(int e) {
        return next[e];
    }

    long addr(int e) {
        return r.get(U64, desc(e) + D_ADDR);
    }

    int len(int e) {
        return r.get(U32, desc(e) + D_LEN);
    }

    int flags(int e) {
        return Short.toUnsignedInt(r.get(U16, desc(e) + D_FLAGS));
    }

    /** The buffer id of the chain to resubmit at head entry {@code e}. */
    int resubmitId(int e) {
        return idOf[e];
    }

    /**
     * Starts recording a chain being taken from the ring. The free list always has room: the
     * queue refuses a chain that would put more descriptors in flight than the ring holds
     * (RING_OVERRUN) before it is {@link #taken}, and the region has at least as many entries.
     */
    void begin() {
        cursor = freeHead;
        count = 0;
    }

    /** One ring descriptor of the chain being taken, as read (each field once, by the queue). */
    void descriptor(long addr, int len, int flags, int id) {
        int e = cursor;
        count++;
        if (e >= descNum) {
            return; // more than the ring holds: the queue refuses the chain (RING_OVERRUN)
        }
        long b = desc(e);
        if (LITTLE_ENDIAN) {
            // id, flags and len are bytes 16-23 of the entry, addr 24-31: two stores, not four.
            r.set(U64, b + D_ID, (id & 0xffffL) | (flags & 0xffffL) << 16 | (long) len << 32);
            r.set(U64, b + D_ADDR, addr);
        } else {
            r.set(U64, b + D_ADDR, addr);
            r.set(U32, b + D_LEN, len);
            r.set(U16, b + D_FLAGS, (short) flags);
            r.set(U16, b + D_ID, (short) id);
        }
        lastEntry = e;
        cursor = next[e];
    }

    /**
     * The chain recorded since {@link #begin} is taken, as buffer {@code id}: its head entry
     * says so (length, last entry, count, then the flag), then the free list moves past it
     * (free_head, then old_free_head with release: a successor that finds old_free_head moved
     * finds the chain whole; one that does not finds its head on the free list and ignores it).
     */
    void taken(int id) {
        int h = freeHead;
        long b = desc(h);
        num[h] = count;
        last[h] = lastEntry;
        entryOf[id] = h;
        r.set(U64, b + D_COUNTER, counter++);
        if (LITTLE_ENDIAN) {
            // inflight, padding, next, last and num are the entry's first 8 bytes: one store
            // (next rewritten with the value it has). A successor trusts none of it before it
            // finds old_free_head moved, stored below with release.
            r.set(U64, b + D_INFLIGHT, 1L | (next[h] & 0xffffL) << 16 | (lastEntry & 0xffffL) << 32 | (count & 0xffffL) << 48);
        } else {
            r.set(U16, b + D_NUM, (short) count);
            r.set(U16, b + D_LAST, (short) lastEntry);
            r.set(ValueLayout.JAVA_BYTE, b + D_INFLIGHT, (byte) 1);
        }
        freeHead = cursor;
        moveFreeHead(cursor);
    }

    /**
     * free_head, then old_free_head with release, both to {@code h}: on little-endian hosts one
     * 32-bit release store of the two (a successor finds both moved or neither).
     */
    private void moveFreeHead(int h) {
        oldFreeHead = h;
        if (LITTLE_ENDIAN) {
            INT.setRelease(r, FREE_HEAD, (h & 0xffff) | (h & 0xffff) << 16);
        } else {
            r.set(U16, FREE_HEAD, (short) h);
            SHORT.setRelease(r, OLD_FREE_HEAD, (short) h);
        }
    }

    /**
     * Buffer {@code id}, the last chain taken, goes back to the ring untaken: its entries go back
     * to the front of the free list (in the order they were taken from it, so taking the chain
     * again reuses them), then its flag is cleared, and its count given back.
     */
    void untaken(int id) {
        int h = entryOf[id];
        entryOf[id] = -1;
        next[last[h]] = freeHead;
        r.set(U16, desc(last[h]) + D_NEXT, (short) freeHead);
        freeHead = h;
        moveFreeHead(h);
        BYTE.setRelease(r, desc(h) + D_INFLIGHT, (byte) 0);
        counter--;
    }

    /**
     * Before buffer {@code id}'s used descriptor is written: its entries join the free list and
     * used_idx moves past its chain. The ring store that follows is a release, so these are in
     * place before the driver (or a successor) can see it.
     */
    void returning(int id) {
        int h = entryOf[id];
        int l = last[h];
        next[l] = freeHead;
        r.set(U16, desc(l) + D_NEXT, (short) freeHead);
        freeHead = h;
        usedIdx += num[h];
        boolean wrapped = usedIdx >= ringSize;
        if (wrapped) {
            usedIdx -= ringSize;
            usedWrap = !usedWrap;
        }
        // Both before the ring's used store (a release): a successor that finds the descriptor
        // used finds both; one that does not rolls back to the old_ fields and ignores these.
        if (LITTLE_ENDIAN) {
            // free_head, old_free_head, used_idx, old_used_idx are bytes 12-19: one store, the
            // old_ ones rewritten with the values they have; used_wrap_counter only on a wrap.
            r.set(U64, FREE_HEAD, (h & 0xffffL) | (oldFreeHead & 0xffffL) << 16 | (usedIdx & 0xffffL) << 32
                    | (oldUsedIdx & 0xffffL) << 48);
            if (wrapped) {
                r.set(ValueLayout.JAVA_BYTE, USED_WRAP, (byte) (usedWrap ? 1 : 0));
            }
        } else {
            r.set(U16, FREE_HEAD, (short) h);
            r.set(ValueLayout.JAVA_BYTE, USED_WRAP, (byte) (usedWrap ? 1 : 0));
            r.set(U16, USED_IDX, (short) usedIdx);
        }
    }

    /**
     * After buffer {@code id}'s used descriptor was stored: its flag is cleared, then the old_
     * fields catch up (old_free_head and old_used_idx in one store on little-endian hosts, else
     * old_used_idx last): a successor that finds old_used_idx equal to used_idx finds everything
     * before it done. The store-store fence keeps the flag after the
     * ring's used store: a flag cleared before the driver could see the buffer returned would lose
     * the request if this process died in between.
     */
    void returned(int id) {
        int h = entryOf[id];
        entryOf[id] = -1;
        VarHandle.storeStoreFence();
        r.set(ValueLayout.JAVA_BYTE, desc(h) + D_INFLIGHT, (byte) 0);
        VarHandle.storeStoreFence();
        // old_used_idx, used_wrap_counter (unchanged) and old_used_wrap_counter in one store: a
        // successor never finds the old index with the new wrap counter or the reverse (it reads
        // the ring's flags at that pair to commit or roll back). The store either happened before
        // this process died or did not; no other thread writes the region.
        int w = usedWrap ? 1 : 0;
        oldFreeHead = freeHead;
        oldUsedIdx = usedIdx;
        if (LITTLE_ENDIAN) {
            // old_free_head with them: bytes 14-21 (used_idx unchanged between), one store.
            r.set(U64, OLD_FREE_HEAD, (freeHead & 0xffffL) | (usedIdx & 0xffffL) << 16 | (usedIdx & 0xffffL) << 32
                    | (long) w << 48 | (long) w << 56);
        } else {
            r.set(U16, OLD_FREE_HEAD, (short) freeHead);
            VarHandle.storeStoreFence();
            r.set(U32, OLD_USED_IDX, (usedIdx & 0xffff) | w << 16 | w << 24);
        }
    }

    /** The head entry of buffer {@code id}'s chain, for tests. */
    int entryOfForTest(int id) {
        return entryOf[id];
    }

    /** This queue's region, for tests. */
    MemorySegment region() {
        return r;
    }
}
