package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;

import static org.jvirtio.api.GuestMemory.LE_U16;
import static org.jvirtio.api.GuestMemory.LE_U32;
import static org.jvirtio.api.GuestMemory.LE_U64;
import static org.jvirtio.ring.SplitRingLayout.*;

/**
 * The driver side of a split virtqueue (VIRTIO 1.3, 2.7), following the driver requirements:
 * lays out the rings in guest memory, adds direct or indirect chains, publishes
 * {@code avail->idx} with release semantics, implements the driver's half of EVENT_IDX and
 * NO_NOTIFY, and collects used elements. The role Linux's virtio_ring plays in a guest; used by
 * the vhost-user frontend, by tests and demos, and by device authors to test a device without a
 * VM (as rust-vmm's mock queue).
 *
 * <p>The driver keeps its own record of which descriptors belong to which chain; it never
 * trusts what the device might have changed in the descriptor table. A used element that names
 * a head not in flight is a {@link QueueDriver.DeviceMisbehaviourException}. {@link PackedQueueDriver}
 * is the same for the packed layout.
 *
 * <p>One thread at a time (no locks); a different thread may be the device.
 */
public final class SplitQueueDriver implements QueueDriver {
    private final GuestMemory memory;
    private final int size;
    private final int mask;
    private final long descAddr;
    private final long availAddr;
    private final long usedAddr;
    private final boolean eventIdx;
    private final long indirectArea;
    private final int maxIndirect;
    private final MemorySegment desc;
    private final MemorySegment avail;
    private final MemorySegment used;
    private final long usedEventOffset;
    private final long availEventOffset;

    private final int[] freeNext;
    private int freeHead;
    private int numFree;
    private final int[] chainDescs;
    private final long[] tokens;
    private final boolean[] inFlight;

    private int availIdx;
    private int publishedAvail;
    private int lastUsed;
    private int inFlightCount;

    /**
     * Lays out a ring at fixed addresses and zeroes its rings.
     *
     * @param indirectArea guest address of {@code size * maxIndirect * 16} bytes for indirect
     *                     tables (one table per head), or -1 for none
     */
    public SplitQueueDriver(GuestMemory memory, int size, long descAddr, long availAddr, long usedAddr,
                            long features, long indirectArea, int maxIndirect) {
        if (!isValidSize(size)) {
            throw new IllegalArgumentException("queue size " + size + " is not a power of two in [1, 32768]");
        }
        this.memory = memory;
        this.size = size;
        this.mask = size - 1;
        this.descAddr = descAddr;
        this.availAddr = availAddr;
        this.usedAddr = usedAddr;
        this.eventIdx = VirtioFeatures.has(features, VirtioFeatures.EVENT_IDX);
        this.indirectArea = indirectArea;
        this.maxIndirect = indirectArea == -1 ? 0 : maxIndirect;
        this.desc = memory.slice(descAddr, descTableBytes(size));
        this.avail = memory.slice(availAddr, availBytes(size));
        this.used = memory.slice(usedAddr, usedBytes(size));
        if (indirectArea != -1) {
            memory.slice(indirectArea, (long) size * maxIndirect * DESC_SIZE);
        }
        this.usedEventOffset = availUsedEventOffset(size);
        this.availEventOffset = usedAvailEventOffset(size);
        desc.fill((byte) 0);
        avail.fill((byte) 0);
        used.fill((byte) 0);
        this.freeNext = new int[size];
        for (int i = 0; i < size; i++) {
            freeNext[i] = i + 1;
        }
        this.freeHead = 0;
        this.numFree = size;
        this.chainDescs = new int[size];
        this.tokens = new long[size];
        this.inFlight = new boolean[size];
    }

    /** A driver whose rings are placed contiguously at {@code base} (see {@link SplitRingLayout#place}). */
    public static SplitQueueDriver at(GuestMemory memory, long base, int size, long features,
                                      long indirectArea, int maxIndirect) {
        Placement p = place(base, size);
        return new SplitQueueDriver(memory, size, p.desc(), p.avail(), p.used(), features, indirectArea, maxIndirect);
    }

    @Override
    public boolean packed() {
        return false;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public long descAddr() {
        return descAddr;
    }

    @Override
    public long availAddr() {
        return availAddr;
    }

    @Override
    public long usedAddr() {
        return usedAddr;
    }

    @Override
    public GuestMemory memory() {
        return memory;
    }

    /** Descriptors not in use. */
    @Override
    public int freeDescriptors() {
        return numFree;
    }

    /**
     * The descriptor id the next {@code add} or {@code addIndirect} will use as its head, or -1
     * when none is free. Lets a caller place per-request data by head id.
     */
    @Override
    public int nextHead() {
        return numFree == 0 ? -1 : freeHead;
    }

    /** Chains added and not yet returned used. */
    @Override
    public int inFlight() {
        return inFlightCount;
    }

    /** The driver's avail index (published or not). */
    public int availIndex() {
        return availIdx;
    }

    /**
     * Adds a chain of direct descriptors: {@code readable} device-readable buffers first, then
     * the rest device-writable.
     *
     * @return the head id, or -1 when there are not enough free descriptors
     */
    @Override
    public int add(long[] addrs, int[] lens, int count, int readable, long token) {
        if (count < 1 || count > size || readable < 0 || readable > count) {
            throw new IllegalArgumentException("bad chain: " + count + " buffers, " + readable + " readable");
        }
        if (numFree < count) {
            return -1;
        }
        int head = freeHead;
        int id = head;
        for (int i = 0; i < count; i++) {
            int flags = (i >= readable ? DESC_F_WRITE : 0) | (i + 1 < count ? DESC_F_NEXT : 0);
            int nextId = freeNext[id];
            writeDesc(desc, (long) id * DESC_SIZE, addrs[i], lens[i], flags, i + 1 < count ? nextId : 0);
            if (i + 1 < count) {
                id = nextId;
            }
        }
        freeHead = freeNext[id];
        numFree -= count;
        return finishAdd(head, count, token);
    }

    /**
     * Adds a chain as one descriptor pointing to an indirect table (VIRTIO 1.3, 2.7.5.3).
     *
     * @return the head id, or -1 when no descriptor is free
     */
    @Override
    public int addIndirect(long[] addrs, int[] lens, int count, int readable, long token) {
        if (maxIndirect == 0) {
            throw new IllegalStateException("this driver has no indirect area");
        }
        if (count < 1 || count > maxIndirect || readable < 0 || readable > count) {
            throw new IllegalArgumentException("bad indirect chain: " + count + " buffers (max " + maxIndirect + "), " + readable + " readable");
        }
        if (numFree < 1) {
            return -1;
        }
        int head = freeHead;
        long table = indirectArea + (long) head * maxIndirect * DESC_SIZE;
        MemorySegment t = memory.slice(table, (long) count * DESC_SIZE);
        for (int i = 0; i < count; i++) {
            int flags = (i >= readable ? DESC_F_WRITE : 0) | (i + 1 < count ? DESC_F_NEXT : 0);
            writeDesc(t, (long) i * DESC_SIZE, addrs[i], lens[i], flags, i + 1 < count ? i + 1 : 0);
        }
        writeDesc(desc, (long) head * DESC_SIZE, table, count * DESC_SIZE, DESC_F_INDIRECT, 0);
        freeHead = freeNext[head];
        numFree -= 1;
        return finishAdd(head, 1, token);
    }

    private static void writeDesc(MemorySegment table, long off, long addr, int len, int flags, int next) {
        table.set(LE_U64, off + DESC_ADDR, addr);
        table.set(LE_U32, off + DESC_LEN, len);
        table.set(LE_U16, off + DESC_FLAGS, (short) flags);
        table.set(LE_U16, off + DESC_NEXT, (short) next);
    }

    private int finishAdd(int head, int descs, long token) {
        chainDescs[head] = descs;
        tokens[head] = token;
        inFlight[head] = true;
        inFlightCount++;
        avail.set(LE_U16, AVAIL_RING + 2L * (availIdx & mask), (short) head);
        availIdx = (availIdx + 1) & 0xffff;
        return head;
    }

    /**
     * Makes every chain added since the last publish visible to the device.
     *
     * @return whether the device wants a kick (EVENT_IDX's avail_event or the NO_NOTIFY flag)
     */
    @Override
    public boolean publish() {
        int old = publishedAvail;
        int now = availIdx;
        if (old == now) {
            return false;
        }
        // Release: descriptors and avail->ring[] entries are visible before the index. Pairs
        // with the device's acquire load of avail->idx (SplitQueue.refreshAvailIdx).
        U16.setRelease(avail, (long) AVAIL_IDX, (short) now);
        publishedAvail = now;
        // Full fence: our avail->idx store must be visible before we read avail_event / flags.
        // Pairs with the device's fence in SplitQueue.enableNotifications between writing
        // avail_event / flags and re-reading avail->idx.
        VarHandle.fullFence();
        if (eventIdx) {
            int availEvent = used.get(LE_U16, availEventOffset) & 0xffff;
            return needEvent(availEvent, now, old);
        }
        return (used.get(LE_U16, (long) USED_FLAGS) & USED_F_NO_NOTIFY) == 0;
    }

    /**
     * Collects used elements published by the device, handing each to {@code handler} and
     * freeing its descriptors.
     *
     * @return how many were collected
     */
    @Override
    public int pollUsed(UsedHandler handler) {
        // Acquire: pairs with the device's release store of used->idx (SplitQueue.publishUsed).
        int idx = (short) U16.getAcquire(used, (long) USED_IDX) & 0xffff;
        int ahead = (idx - lastUsed) & 0xffff;
        if (ahead > inFlightCount) {
            throw new DeviceMisbehaviourException("used->idx " + idx + " is " + ahead + " ahead of " + lastUsed
                    + " with only " + inFlightCount + " chains in flight");
        }
        for (int i = 0; i < ahead; i++) {
            long off = USED_RING + (long) USED_ELEM_SIZE * (lastUsed & mask);
            int id = used.get(LE_U32, off);
            int len = used.get(LE_U32, off + 4);
            lastUsed = (lastUsed + 1) & 0xffff;
            if (id < 0 || id >= size || !inFlight[id]) {
                throw new DeviceMisbehaviourException("used element names descriptor " + Integer.toUnsignedString(id) + ", which is not in flight");
            }
            freeChain(id);
            handler.used(id, tokens[id], len);
        }
        return ahead;
    }

    private void freeChain(int head) {
        inFlight[head] = false;
        inFlightCount--;
        int n = chainDescs[head];
        // The driver's own next links (freeNext) still hold the chain's order; relink the chain
        // at the front of the free list.
        int last = head;
        for (int i = 1; i < n; i++) {
            last = freeNext[last];
        }
        freeNext[last] = freeHead;
        freeHead = head;
        numFree += n;
    }

    /**
     * Asks for interrupts again and re-checks.
     *
     * @return true when used elements arrived meanwhile (poll instead of sleeping)
     */
    @Override
    public boolean enableInterrupts() {
        if (eventIdx) {
            avail.set(LE_U16, usedEventOffset, (short) lastUsed);
        } else {
            avail.set(LE_U16, (long) AVAIL_FLAGS, (short) 0);
        }
        // Full fence: used_event / flags visible before we re-read used->idx. Pairs with the
        // device's fence in SplitQueue.needsInterrupt between storing used->idx and reading
        // used_event / flags.
        VarHandle.fullFence();
        return ((short) U16.getAcquire(used, (long) USED_IDX) & 0xffff) != lastUsed;
    }

    /** Tells the device that interrupts are not needed while the driver polls. */
    @Override
    public void disableInterrupts() {
        if (!eventIdx) {
            avail.set(LE_U16, (long) AVAIL_FLAGS, (short) AVAIL_F_NO_INTERRUPT);
        }
        // With EVENT_IDX a stale used_event suppresses interrupts by itself.
    }

    /** Whether used elements are waiting to be collected. */
    @Override
    public boolean hasUsed() {
        return ((short) U16.getAcquire(used, (long) USED_IDX) & 0xffff) != lastUsed;
    }
}
