package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DirtyLog;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.RingViolation.Reason;

import static org.jvirtio.ring.PackedRingLayout.*;

/**
 * The device side of a packed virtqueue (VIRTIO 1.3, 2.8), over untrusted guest memory: the same
 * contract as {@link SplitQueue}, so the queue engine and every device run on it unchanged.
 *
 * <p><b>Split by concern.</b> This class keeps the positions: the next descriptor to read and the
 * device's avail wrap counter, the next descriptor to write used and the used wrap counter (both
 * are what vhost-user's ring state carries: {@link #availState()}, {@link #usedState()}); a used
 * descriptor is written at the used position, which then skips the whole chain of the buffer it
 * returned. {@link PackedChainReader} reads and validates a chain (every field once, the first
 * violation breaks the queue as for split) and keeps the buffer ids in flight; {@link
 * PackedEvents} keeps the event suppression and decides interrupts; {@link PackedInflight} tracks
 * requests in vhost-user's inflight region.
 *
 * <p><b>Ordering.</b> The head descriptor's flags are read with acquire, pairing with the driver's
 * write barrier before it stores them (virtio_wmb in Linux's virtqueue_add_packed: the driver
 * makes a chain's first descriptor available last); the rest of the chain is read after it. A
 * used descriptor's len, id and flags are one 64-bit release store: the driver that sees the
 * flags sees the rest; those added since the last publish are written by it, the oldest last
 * ({@link PackedUsedBatch}). The fences around event suppression are {@link PackedEvents}'.
 *
 * <p>One thread owns a queue and makes every call; there are no locks.
 */
public final class PackedQueue extends RingQueue {
    /** The ring state of a ring nothing has used yet: position 0, wrap counter 1 ({@link #availState()}). */
    public static final int FRESH = WRAP_BIT;

    /** Ordered 16-bit access (flags) in native order, little-endian checked by {@link SplitRingLayout}. */
    private static final VarHandle U16 = SplitRingLayout.U16;

    private MemorySegment ring;
    private final PackedChainReader reader = new PackedChainReader(walker);
    private final PackedEvents events = new PackedEvents();
    /** Used descriptors added since the last publish, written by it ({@link PackedUsedBatch}). */
    private final PackedUsedBatch unpublished = new PackedUsedBatch();

    private int nextAvail;
    private boolean availWrap;
    private int nextUsed;
    private boolean usedWrap;
    /** The vhost-user inflight region's part for this queue, or null (not tracked). */
    private PackedInflight inflight;

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
        this.geometry = g;
        this.memory = memory;
        this.size = size;
        boolean indirect = VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC);
        walker.ring(memory, ring, size, indirect);
        reader.ring(ring, size, indirect);
        events.reset(memory.slice(g.avail(), EVENT_SIZE), memory.slice(g.used(), EVENT_SIZE),
                VirtioFeatures.has(features, VirtioFeatures.EVENT_IDX), size);
        this.nextAvail = Math.min(availState & ~WRAP_BIT, size - 1);
        this.availWrap = (availState & WRAP_BIT) != 0;
        this.nextUsed = Math.min(usedState & ~WRAP_BIT, size - 1);
        this.usedWrap = (usedState & WRAP_BIT) != 0;
        this.inflight = null;
        this.violation = null;
        pool.reset(size);
        unpublished.reset(size);
        this.active = true;
    }

    @Override
    public int freshState() {
        return FRESH;
    }

    @Override
    public void deactivate() {
        writeUnpublished(); // what was returned reaches the driver, as a stop after a publish would
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
        String note = a.note(availState(), usedState());
        if (a.usedState() >= 0) {
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

    /** The next descriptor the device reads and the avail wrap counter, as vhost-user's GET_VRING_BASE gives them. */
    public int availState() {
        return offWrap(nextAvail, availWrap);
    }

    /** The next descriptor the device writes used and the used wrap counter (used descriptors not yet published are written first). */
    public int usedState() {
        writeUnpublished();
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

    /**
     * The next chain: one a predecessor left in flight while there are any (rebuilt from the
     * inflight region's copies of its descriptors, the ring's may be overwritten by used ones
     * since; the positions do not move, the region's avail position already counts it), else the
     * ring's next available chain.
     */
    private DescriptorChain popChain() {
        if (!active || violation != null) {
            return null;
        }
        PackedInflight track = inflight;
        boolean resubmit = track != null && track.resubmitLeft() > 0;
        int headFlags = 0;
        int e = 0;
        if (resubmit) {
            e = track.nextResubmit();
        } else if ((headFlags = headFlags()) < 0) {
            return null;
        }
        int head = nextAvail;
        RingChain chain = pool.take();
        if (chain == null) {
            if (resubmit) {
                track.unresubmit();
            }
            violate(Reason.TOO_MANY_IN_FLIGHT, resubmit ? track.resubmitId(e) : head, size, 0);
            return null;
        }
        int capacity = chain.bufferCapacity();
        int end;
        try {
            end = resubmit ? (reader.fromRegion(chain, track, e, track.chainLength(e), track.resubmitId(e)) ? 0 : -1)
                    : reader.fromRing(chain, head, availWrap, headFlags, track);
        } catch (InternalError err) {
            pool.putBack(chain, chain.bufferCapacity() - capacity);
            throw err;
        }
        if (end < 0) {
            pool.putBack(chain, chain.bufferCapacity() - capacity);
            violate(walker.violation());
            return null;
        }
        pool.handOut(chain, chain.bufferCapacity() - capacity);
        popped(chain, head, availWrap, resubmit);
        if (!resubmit) {
            nextAvail = end & ~WRAP_BIT;
            availWrap = (end & WRAP_BIT) != 0;
        }
        return chain;
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
        reader.release(id);
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
        int descs = reader.release(id);
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
     * As {@link #addUsed} for each, in order: they are written at the publish, the oldest last,
     * so the driver sees the group at once ({@link PackedUsedBatch}; with the inflight region in
     * ring order, as its protocol needs).
     */
    @Override
    public void addUsedTogether(DescriptorChain[] chains, int[] writtenLengths, int n) {
        checkUsed(chains, writtenLengths, n);
        for (int i = 0; i < n; i++) {
            addUsed(chains[i], writtenLengths[i]);
        }
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
        int flags = usedFlags(usedWrap) | (writtenLength != 0 ? DESC_F_WRITE : 0);
        long word = Integer.toUnsignedLong(writtenLength) | ((long) id << 32) | ((long) flags << 48);
        DirtyLog log = dirtyLog();
        if (log != null) {
            // The bytes the device wrote are marked before the driver can see them returned (as
            // the split ring marks them before it publishes the used index): a front-end that
            // syncs the log when it sees the buffer back finds them marked.
            logWritten(log, chain, writtenLength);
        }
        // Written by the publish (PackedUsedBatch): one 64-bit release store of len, id and
        // flags, so the driver that sees the flags (with its read barrier after them, virtio_rmb
        // in Linux's virtqueue_get_buf_ctx_packed) sees the length and id too, and the buffers
        // the device wrote before.
        if (unpublished.full()) {
            writeUnpublished(); // a hostile driver's doing (PackedUsedBatch#full): written out, never thrown
        }
        unpublished.add(nextUsed, word, id);
        events.returned(descs);
        advanceUsed(descs);
    }

    /** Writes the used descriptors added since the last call and decides whether the driver wants an interrupt for them. */
    @Override
    public boolean publishUsed() {
        writeUnpublished();
        try {
            return needsInterrupt();
        } catch (InternalError e) {
            memoryFault();
            return false;
        }
    }

    private void writeUnpublished() {
        if (unpublished.isEmpty()) {
            return;
        }
        if (!active || violation != null) {
            unpublished.clear(); // a broken ring gets nothing more
            return;
        }
        try {
            unpublished.writeTo(ring, geometry.desc(), dirtyLog(), inflight);
        } catch (InternalError e) {
            memoryFault();
        }
    }

    private boolean needsInterrupt() {
        return active && violation == null && events.needsInterrupt(offWrap(nextUsed, usedWrap));
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
        // "Kick me when you make the descriptor at nextAvail available" (EVENT_IDX), or any kick;
        // fenced before the re-read below (see PackedEvents#enable for the pair).
        events.enable(offWrap(nextAvail, availWrap));
        logDeviceEvent();
        return headFlags() >= 0;
    }

    @Override
    public void disableNotifications() {
        if (!active || violation != null) {
            return;
        }
        try {
            if (events.disable()) {
                logDeviceEvent();
            }
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
                + nextUsed + (usedWrap ? "/1" : "/0") + ", " + events : ", inactive") + (violation != null ? ", broken: " + violation.reason() : "") + "]";
    }
}
