package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DirtyLog;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.RingViolation.Reason;

import static org.jvirtio.api.GuestMemory.LE_U32;
import static org.jvirtio.api.GuestMemory.LE_U64;
import static org.jvirtio.ring.PackedRingLayout.*;

/**
 * The device side of a packed virtqueue (VIRTIO 1.3, 2.8), over untrusted guest memory: the same
 * contract as {@link SplitQueue}, so the queue engine and every device run on it unchanged.
 *
 * <p><b>State.</b> The next descriptor to read and the device's avail wrap counter; the next
 * descriptor to write used and the used wrap counter; per buffer id, how many ring descriptors
 * its chain spans while it is in flight (a used descriptor is written at the used position, which
 * then skips the whole chain of the buffer it returned). Both positions with their counters are
 * what vhost-user's ring state carries ({@link #availState()}, {@link #usedState()}).
 *
 * <p><b>Validation.</b> Every descriptor field is read once into a local and checked: the flags of
 * every descriptor of a chain must say available for the wrap counter of its position, a chain
 * may not be longer than the ring nor (after translation) than {@code maxChainBuffers}, its
 * buffer id (in its last descriptor) must be below the ring size and not in flight, an indirect
 * descriptor stands alone (no NEXT, not inside a chain) and its table is walked as
 * {@link ChainWalker#packedIndirect} says. The first violation breaks the queue, as for split.
 *
 * <p><b>Ordering.</b> The head descriptor's flags are read with acquire, pairing with the driver's
 * write barrier before it stores them (virtio_wmb in Linux's virtqueue_add_packed: the driver
 * makes a chain's first descriptor available last); the rest of the chain is read after it. A
 * used descriptor's len, id and flags are one 64-bit release store: the driver that sees the
 * flags sees the rest. Full fences separate our store of the device's event suppression from the
 * re-read of the next descriptor, and our used stores from the read of the driver's event
 * suppression; each site names its pair.
 *
 * <p>One thread owns a queue and makes every call; there are no locks.
 */
public final class PackedQueue extends RingQueue {
    /** The ring state of a ring nothing has used yet: position 0, wrap counter 1 ({@link #availState()}). */
    public static final int FRESH = WRAP_BIT;

    /** Ordered 16-bit access (flags) in native order, little-endian checked by {@link SplitRingLayout}. */
    private static final VarHandle U16 = SplitRingLayout.U16;
    /** Ordered 64-bit access (a used descriptor's len, id and flags as one store). */
    private static final VarHandle U64 = ValueLayout.JAVA_LONG.varHandle();

    private MemorySegment ring;
    private MemorySegment driverEvent;
    private MemorySegment deviceEvent;
    private boolean eventIdx;
    private boolean indirect;

    private int nextAvail;
    private boolean availWrap;
    private int nextUsed;
    private boolean usedWrap;
    /** Per buffer id: ring descriptors its chain spans while in flight, 0 when it is not. */
    private int[] idDescs = new int[0];
    /** The sum of {@link #idDescs}: the ring positions between the used and the avail position. */
    private int descsInFlight;
    /** The vhost-user inflight region's part for this queue, or null (not tracked). */
    private PackedInflight inflight;
    private int signalledUsed;
    private boolean signalledUsedValid;
    /**
     * Descriptors returned since the interrupt was last decided. EVENT_IDX's off_wrap names a
     * position and a wrap counter only, so whether the driver's event was passed can be told
     * from the old and new positions only while they are less than a lap apart; a device that
     * returns a lap or more between two decisions (it pops while the driver recycles buffers
     * concurrently, so one batch can go round a small ring twice) must interrupt.
     */
    private int usedSinceDecision;
    private boolean notificationsEnabled = true;

    public PackedQueue(int index) {
        this(index, DEFAULT_MAX_CHAIN_BUFFERS);
    }

    /**
     * @param index           the queue's index in its device (for messages)
     * @param maxChainBuffers most buffers one chain may have after translation
     */
    public PackedQueue(int index, int maxChainBuffers) {
        super(index, maxChainBuffers);
    }

    /**
     * Takes a packed ring placement judged by {@link RingGeometry#ofPacked} (not judged again).
     *
     * @param availState the next descriptor to read and its wrap counter ({@link PackedRingLayout#offWrap};
     *                   {@link #FRESH} for a new ring): vhost-user's SET_VRING_BASE
     * @param usedState  the next descriptor to write used and its wrap counter, or -1 for the
     *                   same as {@code availState} (nothing in flight)
     */
    @Override
    public void activate(RingGeometry g, long features, int availState, int usedState) {
        if (!g.packed()) {
            throw new IllegalArgumentException("queue " + index + ": a split ring's placement for a packed queue: " + g);
        }
        checkNothingInFlight();
        active = false;
        int size = g.size();
        GuestMemory memory = g.memory();
        if (usedState < 0) {
            usedState = availState;
        }
        this.ring = memory.slice(g.desc(), ringBytes(size));
        this.driverEvent = memory.slice(g.avail(), EVENT_SIZE);
        this.deviceEvent = memory.slice(g.used(), EVENT_SIZE);
        this.geometry = g;
        this.memory = memory;
        this.size = size;
        this.eventIdx = VirtioFeatures.has(features, VirtioFeatures.EVENT_IDX);
        this.indirect = VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC);
        walker.ring(memory, ring, size, indirect);
        this.nextAvail = Math.min(availState & ~WRAP_BIT, size - 1);
        this.availWrap = (availState & WRAP_BIT) != 0;
        this.nextUsed = Math.min(usedState & ~WRAP_BIT, size - 1);
        this.usedWrap = (usedState & WRAP_BIT) != 0;
        if (idDescs.length != size) {
            idDescs = new int[size];
        } else {
            java.util.Arrays.fill(idDescs, 0);
        }
        this.descsInFlight = 0;
        this.inflight = null;
        this.signalledUsedValid = false;
        this.usedSinceDecision = 0;
        this.notificationsEnabled = true;
        this.violation = null;
        pool.reset(size);
        this.active = true;
    }

    @Override
    public int freshState() {
        return FRESH;
    }

    @Override
    public void deactivate() {
        super.deactivate();
        inflight = null;
    }

    /**
     * Tracks this (active) queue's requests in {@code region}, its part of the vhost-user
     * inflight region ({@link PackedInflight}, {@code descNum} entries, at least the ring's size),
     * and takes over what a predecessor left there: its chains still in flight are served first,
     * in the order it took them, and the ring goes on from the positions the region gives (the
     * front-end cannot give them after a backend crash; {@link InflightAttached#note} says when
     * they differ from its base). Call after {@link #activate} and before the first pop.
     */
    @Override
    public InflightAttached attachInflight(MemorySegment region, int descNum) {
        if (!active) {
            throw new IllegalStateException("queue " + index + " is not active");
        }
        PackedInflight.Attached a;
        try {
            // Plain reads of a descriptor's flags: nothing else runs on the ring yet.
            a = PackedInflight.attach(region, descNum, size,
                    pos -> Short.toUnsignedInt(ring.get(GuestMemory.LE_U16, (long) pos * DESC_SIZE + DESC_FLAGS)), usedState());
        } catch (InternalError e) {
            memoryFault();
            return new InflightAttached(0, null, null);
        }
        inflight = a.tracker();
        String note = null;
        if (a.usedState() >= 0) {
            if (a.usedState() != usedState() || a.availState() != availState()) {
                note = "ring state from the inflight region: avail " + describe(a.availState()) + ", used " + describe(a.usedState())
                        + " (the front-end's base said avail " + describe(availState()) + ", used " + describe(usedState()) + ")";
            }
            nextAvail = a.availState() & ~WRAP_BIT;
            availWrap = (a.availState() & WRAP_BIT) != 0;
            nextUsed = a.usedState() & ~WRAP_BIT;
            usedWrap = (a.usedState() & WRAP_BIT) != 0;
        }
        return new InflightAttached(a.resubmitted(), a.inconsistency(), note);
    }

    /** The inflight tracker, for tests. */
    PackedInflight inflightTracker() {
        return inflight;
    }

    private static String describe(int state) {
        return (state & ~WRAP_BIT) + "/" + ((state & WRAP_BIT) != 0 ? 1 : 0);
    }

    /** The next descriptor the device reads and the avail wrap counter, as vhost-user's GET_VRING_BASE gives them. */
    public int availState() {
        return offWrap(nextAvail, availWrap);
    }

    /** The next descriptor the device writes used and the used wrap counter. */
    public int usedState() {
        return offWrap(nextUsed, usedWrap);
    }

    /** Logs the device area (the device's event suppression) at its own guest address; used descriptors at theirs. */
    @Override
    public void setDirtyLog(DirtyLog log) {
        setDirtyLog(log, geometry == null ? 0 : geometry.used());
    }

    /** The head descriptor's flags, read with acquire, or -1 when it is not available. */
    private int headFlags() {
        // Acquire: pairs with the driver's write barrier before it stores a chain's first
        // descriptor's flags (virtio_wmb in Linux's virtqueue_add_packed); the rest of the chain,
        // read after this, is at least as new.
        int flags = (short) U16.getAcquire(ring, (long) nextAvail * DESC_SIZE + DESC_FLAGS) & 0xffff;
        return isAvailable(flags, availWrap) ? flags : -1;
    }

    /**
     * 1 when the next descriptor is available, else 0: a packed ring has no index to count chains
     * by without walking them, and what a poll wants to know is whether there is work.
     */
    @Override
    public int available() {
        if (!active || violation != null) {
            return 0;
        }
        try {
            return headFlags() >= 0 ? 1 : 0;
        } catch (InternalError e) {
            memoryFault();
            return 0;
        }
    }

    @Override
    public DescriptorChain pop() {
        try {
            return popChain();
        } catch (InternalError e) {
            return memoryFault();
        }
    }

    private DescriptorChain popChain() {
        if (!active || violation != null) {
            return null;
        }
        if (inflight != null && inflight.resubmitLeft() > 0) {
            return resubmit();
        }
        int headFlags = headFlags();
        if (headFlags < 0) {
            return null;
        }
        int head = nextAvail;
        RingChain chain = pool.take();
        if (chain == null) {
            violate(Reason.TOO_MANY_IN_FLIGHT, head, size, 0);
            return null;
        }
        int capacity = chain.bufferCapacity();
        boolean ok;
        try {
            ok = walk(chain, head, headFlags);
        } catch (InternalError e) {
            pool.putBack(chain, chain.bufferCapacity() - capacity);
            throw e;
        }
        if (!ok) {
            pool.putBack(chain, chain.bufferCapacity() - capacity);
            violate(walker.violation());
            return null;
        }
        pool.handOut(chain, chain.bufferCapacity() - capacity);
        popped(chain, head, availWrap, false);
        nextAvail = walkEnd;
        availWrap = walkEndWrap;
        return chain;
    }

    /**
     * The next chain a predecessor left in flight, rebuilt from the inflight region's copies of
     * its descriptors (the ring's may be overwritten by used descriptors since). Each field read
     * once and walked as a chain from the ring is, with the buffer id {@link PackedInflight#attach}
     * checked; the positions do not move (the region's avail position already counts it).
     */
    private DescriptorChain resubmit() {
        PackedInflight track = inflight;
        int e = track.nextResubmit();
        int n = track.chainLength(e);
        int id = track.resubmitId(e);
        RingChain chain = pool.take();
        if (chain == null) {
            track.unresubmit();
            violate(Reason.TOO_MANY_IN_FLIGHT, id, size, 0);
            return null;
        }
        int capacity = chain.bufferCapacity();
        boolean ok;
        try {
            ok = rebuild(chain, e, n, id);
        } catch (InternalError err) {
            pool.putBack(chain, chain.bufferCapacity() - capacity);
            throw err;
        }
        if (!ok) {
            pool.putBack(chain, chain.bufferCapacity() - capacity);
            violate(walker.violation());
            return null;
        }
        pool.handOut(chain, chain.bufferCapacity() - capacity);
        idDescs[id] = n;
        descsInFlight += n;
        chain.id(id);
        popped(chain, nextAvail, availWrap, true);
        return chain;
    }

    private boolean rebuild(RingChain chain, int head, int n, int id) {
        if (idDescs[id] != 0) {
            return walker.refuse(Reason.BUFFER_ID_IN_FLIGHT, id, head, 0);
        }
        walker.begin(chain, head);
        PackedInflight track = inflight;
        int e = head;
        for (int k = 0; k < n; k++, e = track.nextEntry(e)) {
            long addr = track.addr(e);
            int len = track.len(e);
            int flags = track.flags(e);
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    return walker.refuse(Reason.INDIRECT_NOT_NEGOTIATED, e, 0, 0);
                }
                if (n > 1) {
                    return walker.refuse(Reason.INDIRECT_IN_CHAIN, e, 0, 0);
                }
                return walker.packedIndirect(chain, addr, Integer.toUnsignedLong(len));
            }
            if (!walker.descriptor(chain, addr, len, (flags & DESC_F_WRITE) != 0, e)) {
                return false;
            }
        }
        return true;
    }

    /** Where the last successful {@link #walk} ended: the descriptor after the chain, and its wrap counter. */
    private int walkEnd;
    private boolean walkEndWrap;

    /**
     * Walks the chain whose first descriptor is at {@code head} (its flags already read: {@code
     * headFlags}) into {@code chain}, in ring order; sets {@link #walkEnd}. False on a violation
     * (the walker's).
     */
    private boolean walk(RingChain chain, int head, int headFlags) {
        walker.begin(chain, head);
        PackedInflight track = inflight;
        if (track != null) {
            track.begin();
        }
        int p = head;
        boolean w = availWrap;
        int flags = headFlags;
        int n = 0;
        int id;
        while (true) {
            if (++n > size) {
                return walker.refuse(Reason.CHAIN_LONGER_THAN_RING, head, size, 0);
            }
            long base = (long) p * DESC_SIZE;
            // Each field read once into a local (TOCTOU). len, id and flags are one 64-bit word;
            // the head's flags are the ones read with acquire.
            long addr = ring.get(LE_U64, base + DESC_ADDR);
            long word = ring.get(LE_U64, base + DESC_LEN);
            int len = (int) word;
            int descId = (int) (word >>> 32) & 0xffff;
            if (n > 1) {
                flags = (int) (word >>> 48);
                if (!isAvailable(flags, w)) {
                    // VIRTIO 1.3, 2.8.6: every descriptor of a chain carries its AVAIL and USED bits.
                    return walker.refuse(Reason.PACKED_FLAGS, p, w ? 1 : 0, flags);
                }
            }
            if (track != null) {
                track.descriptor(addr, len, flags, descId); // the values just read, not read again
            }
            if (++p == size) {
                p = 0;
                w = !w;
            }
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    return walker.refuse(Reason.INDIRECT_NOT_NEGOTIATED, base / DESC_SIZE, 0, 0);
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    return walker.refuse(Reason.INDIRECT_WITH_NEXT, base / DESC_SIZE, 0, 0);
                }
                if (n > 1) {
                    // 2.8.7: no direct descriptor with INDIRECT in a list linked by NEXT.
                    return walker.refuse(Reason.INDIRECT_IN_CHAIN, base / DESC_SIZE, 0, 0);
                }
                if (!walker.packedIndirect(chain, addr, Integer.toUnsignedLong(len))) {
                    return false;
                }
                id = descId;
                break;
            }
            if (!walker.descriptor(chain, addr, len, (flags & DESC_F_WRITE) != 0, (int) (base / DESC_SIZE))) {
                return false;
            }
            if ((flags & DESC_F_NEXT) == 0) {
                id = descId; // 2.8.6: the buffer id is in the chain's last descriptor
                break;
            }
        }
        if (id >= size) {
            return walker.refuse(Reason.BUFFER_ID_OUT_OF_RANGE, id, size, head);
        }
        if (idDescs[id] != 0) {
            return walker.refuse(Reason.BUFFER_ID_IN_FLIGHT, id, head, 0);
        }
        if (descsInFlight + n > size) {
            // The driver made available a position whose buffer the device has not used yet
            // (2.8.21: it may not): the used position would overtake chains still in flight.
            return walker.refuse(Reason.RING_OVERRUN, head, descsInFlight + n, size);
        }
        idDescs[id] = n;
        descsInFlight += n;
        if (track != null) {
            track.taken(id);
        }
        chain.id(id);
        walkEnd = p;
        walkEndWrap = w;
        return true;
    }

    /**
     * Puts back a chain the device does not want yet: the next pop reads the same descriptors
     * again. Several chains can be put back, the latest first, each while in flight and before
     * the ring stops. Safe although used descriptors may have been written since: those go to
     * positions before the chain's first one (the used position trails the descriptors of every
     * chain still in flight, this one included).
     */
    @Override
    public void unpop(DescriptorChain chain) {
        RingChain rc = unpopping(chain);
        int id = rc.head();
        descsInFlight -= idDescs[id];
        idDescs[id] = 0;
        pool.give(rc);
        if (rc.resubmitted) {
            inflight.unresubmit(); // served again by the next pop, from the region
            return;
        }
        if (inflight != null) {
            inflight.untaken(id);
        }
        if (!active || violation != null) {
            return;
        }
        nextAvail = rc.popAvail;
        availWrap = rc.popWrap;
    }

    @Override
    public void addUsed(DescriptorChain chain, int writtenLength) {
        if (chain.owner() != index || !pool.handedOut(chain)) {
            throw new IllegalStateException("chain " + chain + " is not in flight on queue " + index);
        }
        if (Integer.toUnsignedLong(writtenLength) > chain.writableLength()) {
            throw new IllegalArgumentException("written length " + Integer.toUnsignedString(writtenLength) + " exceeds the "
                    + chain.writableLength() + " writable bytes of chain " + chain.head() + " on queue " + index);
        }
        RingChain rc = (RingChain) chain;
        int id = rc.head();
        int descs = idDescs[id];
        idDescs[id] = 0;
        descsInFlight -= descs;
        try {
            if (active && violation == null) {
                writeUsed(rc, id, descs, writtenLength);
            }
        } catch (InternalError e) {
            // A fault's error is delivered asynchronously: it may surface at writeUsed's return.
            memoryFault();
        } finally {
            pool.give(rc);
        }
    }

    /**
     * Each used descriptor is visible to the driver once written, and a driver takes them in ring
     * order: so the others are written first, at their places after the first chain's, and the
     * first last, with its release store making the whole group visible at once (what DPDK's
     * batched enqueue does with its head descriptor). Without it a driver could read the first
     * chain's num_buffers and find the next position not yet used (Linux drops the frame: "rx
     * error: buffers missing"). With the inflight region attached, one by one: its commit is
     * decided from the descriptor at the oldest used position, which must be written in order.
     */
    @Override
    public void addUsedTogether(DescriptorChain[] chains, int[] writtenLengths, int n) {
        checkUsed(chains, writtenLengths, n);
        if (n <= 1 || inflight != null || !active || violation != null) {
            for (int i = 0; i < n; i++) {
                addUsed(chains[i], writtenLengths[i]);
            }
            return;
        }
        int start = nextUsed;
        boolean startWrap = usedWrap;
        advanceUsed(idDescs[chains[0].head()]);
        for (int i = 1; i < n; i++) {
            addUsed(chains[i], writtenLengths[i]);
        }
        int end = nextUsed;
        boolean endWrap = usedWrap;
        nextUsed = start;
        usedWrap = startWrap;
        addUsed(chains[0], writtenLengths[0]);
        nextUsed = end;
        usedWrap = endWrap;
    }

    private void advanceUsed(int descs) {
        nextUsed += descs;
        if (nextUsed >= size) {
            nextUsed -= size;
            usedWrap = !usedWrap;
        }
    }

    /** Writes the used descriptor of buffer {@code id} (its chain spanned {@code descs}) and logs what it wrote. */
    private void writeUsed(RingChain chain, int id, int descs, int writtenLength) {
        long base = (long) nextUsed * DESC_SIZE;
        int flags = usedFlags(usedWrap) | (writtenLength != 0 ? DESC_F_WRITE : 0);
        long word = Integer.toUnsignedLong(writtenLength) | ((long) id << 32) | ((long) flags << 48);
        PackedInflight track = inflight;
        if (track != null) {
            track.returning(id);
        }
        DirtyLog log = dirtyLog();
        if (log != null) {
            // The bytes the device wrote are marked before the driver can see them returned (as
            // the split ring marks them before it publishes the used index): a front-end that
            // syncs the log when it sees the buffer back finds them marked.
            logWritten(log, chain, writtenLength);
        }
        try {
            // Release, one 64-bit store of len, id and flags: the driver that sees the flags
            // (with its read barrier after them, virtio_rmb in Linux's virtqueue_get_buf_ctx_packed)
            // sees the length and id too, and the buffers the device wrote before.
            U64.setRelease(ring, base + DESC_LEN, word);
        } catch (InternalError e) {
            memoryFault();
            return;
        }
        if (track != null) {
            track.returned(id);
        }
        if (log != null) {
            log.mark(geometry.desc() + base, DESC_SIZE); // after the store: a sync in between copies it again
        }
        usedSinceDecision += descs;
        advanceUsed(descs);
    }

    /**
     * The used descriptors are visible as soon as {@link #addUsed} wrote them (each is one
     * release store); this decides whether the driver wants an interrupt for those written since
     * the last call.
     */
    @Override
    public boolean publishUsed() {
        try {
            return needsInterrupt();
        } catch (InternalError e) {
            memoryFault();
            return false;
        }
    }

    private boolean needsInterrupt() {
        if (!active || violation != null) {
            return false;
        }
        // Full fence: our used descriptors must be visible before we read the driver's event
        // suppression, or we race the driver re-enabling interrupts. Pairs with the driver's
        // virtio_mb between writing its event suppression and re-reading the next used
        // descriptor (virtqueue_enable_cb_prepare_packed / virtqueue_poll_packed in Linux).
        VarHandle.fullFence();
        int now = offWrap(nextUsed, usedWrap);
        int old = signalledUsed;
        boolean valid = signalledUsedValid && usedSinceDecision < size;
        signalledUsed = now;
        signalledUsedValid = true;
        usedSinceDecision = 0;
        int event = driverEvent.get(LE_U32, 0); // off_wrap and flags read once, together
        int flags = (event >>> 16) & 0x3;
        if (flags == EVENT_F_DISABLE) {
            return false;
        }
        if (flags != EVENT_F_DESC || !eventIdx) {
            return true; // ENABLE, or DESC without EVENT_IDX / the reserved value: interrupt, the safe side
        }
        return !valid || needEvent(size, event & 0xffff, now, old);
    }

    @Override
    public boolean enableNotifications() {
        try {
            return enable();
        } catch (InternalError e) {
            memoryFault();
            return false;
        }
    }

    private boolean enable() {
        if (!active || violation != null) {
            return false;
        }
        // "Kick me when you make the descriptor at nextAvail available" (EVENT_IDX), or any kick.
        int event = eventIdx ? offWrap(nextAvail, availWrap) | (EVENT_F_DESC << 16) : EVENT_F_ENABLE << 16;
        deviceEvent.set(LE_U32, 0, event);
        logDeviceEvent();
        notificationsEnabled = true;
        // Full fence: the event suppression store must be visible before we re-read the next
        // descriptor's flags, or the driver may read the old value, skip its kick, and both sides
        // sleep. Pairs with the driver's virtio_mb between making descriptors available and
        // reading the device's event suppression (virtqueue_kick_prepare_packed).
        VarHandle.fullFence();
        return headFlags() >= 0;
    }

    @Override
    public void disableNotifications() {
        if (!active || violation != null || !notificationsEnabled) {
            return;
        }
        notificationsEnabled = false;
        try {
            deviceEvent.set(LE_U32, 0, EVENT_F_DISABLE << 16);
            logDeviceEvent();
        } catch (InternalError e) {
            memoryFault();
        }
    }

    private void logDeviceEvent() {
        DirtyLog log = dirtyLog();
        if (log != null) {
            log.mark(usedLogAddr, EVENT_SIZE);
        }
    }

    @Override
    public String toString() {
        return "PackedQueue[" + index + (active ? ", size=" + size + ", avail=" + nextAvail + (availWrap ? "/1" : "/0") + ", used="
                + nextUsed + (usedWrap ? "/1" : "/0") + ", signalled 0x" + Integer.toHexString(signalledUsed)
                + (notificationsEnabled ? ", notifying" : "") : ", inactive") + (violation != null ? ", broken: " + violation.reason() : "") + "]";
    }
}
