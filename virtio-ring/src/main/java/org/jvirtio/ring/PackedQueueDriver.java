package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;

import static org.jvirtio.api.GuestMemory.LE_U16;
import static org.jvirtio.api.GuestMemory.LE_U32;
import static org.jvirtio.api.GuestMemory.LE_U64;
import static org.jvirtio.ring.PackedRingLayout.*;

/**
 * The driver side of a packed virtqueue (VIRTIO 1.3, 2.8), following the driver requirements as
 * Linux's virtqueue_add_packed and virtqueue_get_buf_ctx_packed do: descriptors written in ring
 * order with the buffer id in every descriptor of a chain, a chain's first descriptor made
 * available last, the driver's event suppression for interrupts and the device's read for kicks
 * (EVENT_IDX with off_wrap, or ENABLE / DISABLE), used descriptors found in ring order, each
 * skipping the descriptors of the chain it returned.
 *
 * <p>Chains added are made available by {@link #publish()}, all at once: every first descriptor's
 * flags but the batch's first are stored, then that one with release; the device, which reads
 * in ring order, sees the batch when it sees its first chain.
 *
 * <p>The driver keeps its own record of each buffer id's chain (descriptors, token); a used
 * descriptor naming an id not in flight, or flags a device never writes, is a
 * {@link QueueDriver.DeviceMisbehaviourException}. One thread at a time; the device may be another.
 */
public final class PackedQueueDriver implements QueueDriver {
    private static final VarHandle U16 = SplitRingLayout.U16;

    private final GuestMemory memory;
    private final int size;
    private final long descAddr;
    private final long driverAddr;
    private final long deviceAddr;
    private final boolean eventIdx;
    private final long indirectArea;
    private final int maxIndirect;
    private final MemorySegment ring;
    private final MemorySegment driverEvent;
    private final MemorySegment deviceEvent;

    /** Free buffer ids, a stack. */
    private final int[] freeIds;
    private int freeIdTop;
    private final int[] idDescs;
    private final long[] tokens;
    private final boolean[] inFlight;
    private int numFree;
    private int inFlightCount;

    private int nextAvail;
    private boolean availWrap = true;
    private int nextUsed;
    private boolean usedWrap = true;

    /** First descriptors added since the last publish: their positions and the flags to store. */
    private final int[] pendingPos;
    private final int[] pendingFlags;
    private int pending;
    /** Where the device stood as of the last publish (for EVENT_IDX's kick decision). */
    private int publishedState = FRESH_STATE;
    private static final int FRESH_STATE = WRAP_BIT;

    /**
     * Lays out a ring at fixed addresses and zeroes it.
     *
     * @param indirectArea guest address of {@code size * maxIndirect * 16} bytes for indirect
     *                     tables (one per buffer id), or -1 for none
     */
    public PackedQueueDriver(GuestMemory memory, int size, long descAddr, long driverAddr, long deviceAddr,
                             long features, long indirectArea, int maxIndirect) {
        if (!isValidSize(size)) {
            throw new IllegalArgumentException("packed queue size " + size + " is not in [1, 32768]");
        }
        this.memory = memory;
        this.size = size;
        this.descAddr = descAddr;
        this.driverAddr = driverAddr;
        this.deviceAddr = deviceAddr;
        this.eventIdx = VirtioFeatures.has(features, VirtioFeatures.EVENT_IDX);
        this.indirectArea = indirectArea;
        this.maxIndirect = indirectArea == -1 ? 0 : maxIndirect;
        this.ring = memory.slice(descAddr, ringBytes(size));
        this.driverEvent = memory.slice(driverAddr, EVENT_SIZE);
        this.deviceEvent = memory.slice(deviceAddr, EVENT_SIZE);
        if (indirectArea != -1) {
            memory.slice(indirectArea, (long) size * maxIndirect * DESC_SIZE);
        }
        ring.fill((byte) 0);
        driverEvent.fill((byte) 0);
        deviceEvent.fill((byte) 0);
        this.freeIds = new int[size];
        for (int i = 0; i < size; i++) {
            freeIds[i] = size - 1 - i;
        }
        this.freeIdTop = size;
        this.idDescs = new int[size];
        this.tokens = new long[size];
        this.inFlight = new boolean[size];
        this.numFree = size;
        this.pendingPos = new int[size];
        this.pendingFlags = new int[size];
    }

    /** A driver whose ring is placed contiguously at {@code base} (see {@link PackedRingLayout#place}). */
    public static PackedQueueDriver at(GuestMemory memory, long base, int size, long features, long indirectArea, int maxIndirect) {
        Placement p = place(base, size);
        return new PackedQueueDriver(memory, size, p.desc(), p.driver(), p.device(), features, indirectArea, maxIndirect);
    }

    @Override
    public boolean packed() {
        return true;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public GuestMemory memory() {
        return memory;
    }

    @Override
    public long descAddr() {
        return descAddr;
    }

    @Override
    public long availAddr() {
        return driverAddr;
    }

    @Override
    public long usedAddr() {
        return deviceAddr;
    }

    @Override
    public int freeDescriptors() {
        return numFree;
    }

    @Override
    public int nextHead() {
        return freeIdTop == 0 || numFree == 0 ? -1 : freeIds[freeIdTop - 1];
    }

    @Override
    public int inFlight() {
        return inFlightCount;
    }

    /** The next descriptor the driver makes available and its wrap counter (off_wrap encoding). */
    public int availState() {
        return offWrap(nextAvail, availWrap);
    }

    @Override
    public int add(long[] addrs, int[] lens, int count, int readable, long token) {
        if (count < 1 || count > size || readable < 0 || readable > count) {
            throw new IllegalArgumentException("bad chain: " + count + " buffers, " + readable + " readable");
        }
        if (numFree < count || freeIdTop == 0) {
            return -1;
        }
        int id = freeIds[--freeIdTop];
        int first = nextAvail;
        int firstFlags = 0;
        for (int i = 0; i < count; i++) {
            int flags = availFlags(availWrap) | (i >= readable ? DESC_F_WRITE : 0) | (i + 1 < count ? DESC_F_NEXT : 0);
            long base = (long) nextAvail * DESC_SIZE;
            ring.set(LE_U64, base + DESC_ADDR, addrs[i]);
            ring.set(LE_U32, base + DESC_LEN, lens[i]);
            ring.set(LE_U16, base + DESC_ID, (short) id);
            if (i == 0) {
                firstFlags = flags; // stored by publish, after the rest of the chain
            } else {
                ring.set(LE_U16, base + DESC_FLAGS, (short) flags);
            }
            advance();
        }
        return finishAdd(id, count, token, first, firstFlags);
    }

    @Override
    public int addIndirect(long[] addrs, int[] lens, int count, int readable, long token) {
        if (maxIndirect == 0) {
            throw new IllegalStateException("this driver has no indirect area");
        }
        if (count < 1 || count > maxIndirect || readable < 0 || readable > count) {
            throw new IllegalArgumentException("bad indirect chain: " + count + " buffers (max " + maxIndirect + "), " + readable + " readable");
        }
        if (numFree < 1 || freeIdTop == 0) {
            return -1;
        }
        int id = freeIds[--freeIdTop];
        long table = indirectArea + (long) id * maxIndirect * DESC_SIZE;
        MemorySegment t = memory.slice(table, (long) count * DESC_SIZE);
        for (int i = 0; i < count; i++) {
            long off = (long) i * DESC_SIZE;
            t.set(LE_U64, off + DESC_ADDR, addrs[i]);
            t.set(LE_U32, off + DESC_LEN, lens[i]);
            t.set(LE_U16, off + DESC_ID, (short) 0);
            t.set(LE_U16, off + DESC_FLAGS, (short) (i >= readable ? DESC_F_WRITE : 0));
        }
        int first = nextAvail;
        long base = (long) first * DESC_SIZE;
        ring.set(LE_U64, base + DESC_ADDR, table);
        ring.set(LE_U32, base + DESC_LEN, count * DESC_SIZE);
        ring.set(LE_U16, base + DESC_ID, (short) id);
        int flags = availFlags(availWrap) | DESC_F_INDIRECT;
        advance();
        return finishAdd(id, 1, token, first, flags);
    }

    private void advance() {
        if (++nextAvail == size) {
            nextAvail = 0;
            availWrap = !availWrap;
        }
    }

    private int finishAdd(int id, int descs, long token, int first, int firstFlags) {
        idDescs[id] = descs;
        tokens[id] = token;
        inFlight[id] = true;
        inFlightCount++;
        numFree -= descs;
        pendingPos[pending] = first;
        pendingFlags[pending] = firstFlags;
        pending++;
        return id;
    }

    @Override
    public boolean publish() {
        if (pending == 0) {
            return false;
        }
        for (int i = pending - 1; i > 0; i--) {
            ring.set(LE_U16, (long) pendingPos[i] * DESC_SIZE + DESC_FLAGS, (short) pendingFlags[i]);
        }
        // Release: every descriptor of the batch (and the later chains' first flags, above) is
        // visible before the first chain's flags. Pairs with the device's acquire load of a
        // chain's first flags (PackedQueue.headFlags).
        U16.setRelease(ring, (long) pendingPos[0] * DESC_SIZE + DESC_FLAGS, (short) pendingFlags[0]);
        pending = 0;
        int old = publishedState;
        int now = offWrap(nextAvail, availWrap);
        publishedState = now;
        // Full fence: our flags stores must be visible before we read the device's event
        // suppression. Pairs with the device's fence in PackedQueue.enableNotifications between
        // writing its event suppression and re-reading the next descriptor.
        VarHandle.fullFence();
        int event = deviceEvent.get(LE_U32, 0);
        int flags = (event >>> 16) & 0x3;
        if (flags == EVENT_F_DISABLE) {
            return false;
        }
        if (flags != EVENT_F_DESC || !eventIdx) {
            return true;
        }
        return needEvent(size, event & 0xffff, now, old);
    }

    @Override
    public int pollUsed(UsedHandler handler) {
        int n = 0;
        while (true) {
            long base = (long) nextUsed * DESC_SIZE;
            // Acquire: pairs with the device's release store of a used descriptor (PackedQueue.writeUsed).
            int flags = (short) U16.getAcquire(ring, base + DESC_FLAGS) & 0xffff;
            if (!isUsed(flags, usedWrap)) {
                return n;
            }
            long word = ring.get(LE_U64, base + DESC_LEN);
            int id = (int) (word >>> 32) & 0xffff;
            int len = (flags & DESC_F_WRITE) != 0 ? (int) word : 0;
            if (id >= size || !inFlight[id]) {
                throw new DeviceMisbehaviourException("used descriptor at " + nextUsed + " names buffer id " + id + ", which is not in flight");
            }
            int descs = idDescs[id];
            nextUsed += descs;
            if (nextUsed >= size) {
                nextUsed -= size;
                usedWrap = !usedWrap;
            }
            inFlight[id] = false;
            inFlightCount--;
            numFree += descs;
            freeIds[freeIdTop++] = id;
            n++;
            handler.used(id, tokens[id], len);
        }
    }

    @Override
    public boolean enableInterrupts() {
        int event = eventIdx ? offWrap(nextUsed, usedWrap) | (EVENT_F_DESC << 16) : EVENT_F_ENABLE << 16;
        driverEvent.set(LE_U32, 0, event);
        // Full fence: our event suppression is visible before we re-read the next used
        // descriptor. Pairs with the device's fence in PackedQueue.needsInterrupt between its
        // used stores and its read of this structure.
        VarHandle.fullFence();
        return hasUsed();
    }

    @Override
    public void disableInterrupts() {
        driverEvent.set(LE_U32, 0, EVENT_F_DISABLE << 16);
    }

    @Override
    public boolean hasUsed() {
        int flags = (short) U16.getAcquire(ring, (long) nextUsed * DESC_SIZE + DESC_FLAGS) & 0xffff;
        return inFlightCount > 0 && isUsed(flags, usedWrap);
    }

    @Override
    public String toString() {
        return "PackedQueueDriver[size=" + size + ", avail=" + nextAvail + (availWrap ? "/1" : "/0") + ", used=" + nextUsed + (usedWrap ? "/1" : "/0")
                + ", in flight " + inFlightCount + ", published 0x" + Integer.toHexString(publishedState) + "]";
    }
}
