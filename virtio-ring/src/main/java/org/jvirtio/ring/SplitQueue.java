package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DirtyLog;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.RingViolation.Reason;

import static org.jvirtio.api.GuestMemory.LE_U16;
import static org.jvirtio.api.GuestMemory.LE_U64;
import static org.jvirtio.ring.SplitRingLayout.*;

/**
 * The device side of a split virtqueue (VIRTIO 1.3, 2.7), over untrusted guest memory.
 *
 * <p><b>Threading.</b> One thread owns a queue and makes every call; there are no locks. A
 * control thread that wants to reconfigure a running queue hands the change to the owner.
 *
 * <p><b>Validation.</b> Every index, address, length and flag read from the guest is read once
 * into a local and checked before use (see {@link RingViolation.Reason}). The first violation
 * marks the queue broken: later pops return null, nothing more is written to the ring, and the
 * {@link ViolationListener} hears about it once, so the device can set DEVICE_NEEDS_RESET. No
 * exception leaves this class because of guest data, and no access leaves guest memory.
 *
 * <p><b>Ordering.</b> {@code avail->idx} is read with acquire semantics once per batch;
 * {@code used->idx} is written with release semantics once per {@link #publishUsed()}; full
 * fences separate a store from a later load of the other side's field where the protocol needs
 * store-load order. Each site names the driver-side barrier it pairs with.
 *
 * <p>Split by concern: {@link ChainWalker} walks and translates a chain's descriptors,
 * {@link ChainPool} holds the chain objects (nothing allocated per chain in steady state, what it
 * keeps bounded), {@link SplitInflight} tracks requests in vhost-user's inflight region; this
 * class keeps the index protocol, notifications, dirty-log marking, {@link #unpop} and the
 * containment of faults in guest memory.
 */
public final class SplitQueue extends RingQueue {
    /** Buffer entries (16 bytes each) the chain pool keeps grown, all chains together: see {@link ChainPool}. */
    public static final int RETAINED_BUFFERS = ChainPool.RETAINED_BUFFERS;

    // ---- layout, fixed while active (the geometry is the base class's) ----
    private int mask;
    private boolean eventIdx;
    private MemorySegment desc;
    private MemorySegment avail;
    private MemorySegment used;
    private long usedEventOffset;
    private long availEventOffset;

    // ---- indices (16-bit values kept in ints) ----
    private int nextAvail;
    private int shadowAvailIdx;
    private int nextUsed;
    private int signalledUsed;
    private boolean signalledUsedValid;
    private boolean notificationsEnabled = true;

    /** The vhost-user inflight region's part for this queue, or null (not tracked). */
    private SplitInflight inflight;

    public SplitQueue(int index) {
        this(index, DEFAULT_MAX_CHAIN_BUFFERS);
    }

    /**
     * @param index           the queue's index in its device (for messages)
     * @param maxChainBuffers most buffers one chain may have after translation; longer chains
     *                        are a {@link Reason#CHAIN_TOO_LONG} violation
     */
    public SplitQueue(int index, int maxChainBuffers) {
        super(index, maxChainBuffers);
    }

    /**
     * Takes a ring placement judged by {@link RingGeometry#of} (not judged again); the queue
     * becomes active with the given indices.
     *
     * @param nextUsed the next used ring slot to write, or -1 for {@code used->idx} as found in the ring
     * @see RingQueue#activate(GuestMemory, int, long, long, long, long, int, int)
     */
    @Override
    public void activate(RingGeometry g, long features, int nextAvail, int nextUsed) {
        checkNothingInFlight();
        active = false;
        int size = g.size();
        GuestMemory memory = g.memory();
        MemorySegment d = memory.slice(g.desc(), descTableBytes(size));
        MemorySegment a = memory.slice(g.avail(), availBytes(size));
        MemorySegment u = memory.slice(g.used(), usedBytes(size));
        if (nextUsed < 0) {
            nextUsed = Short.toUnsignedInt(u.get(LE_U16, USED_IDX));
        }
        this.geometry = g;
        this.memory = memory;
        this.size = size;
        this.mask = size - 1;
        this.desc = d;
        this.avail = a;
        this.used = u;
        this.usedEventOffset = availUsedEventOffset(size);
        this.availEventOffset = usedAvailEventOffset(size);
        this.eventIdx = VirtioFeatures.has(features, VirtioFeatures.EVENT_IDX);
        walker.ring(memory, d, size, VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC));
        this.nextAvail = nextAvail & 0xffff;
        this.inflight = null;
        this.shadowAvailIdx = this.nextAvail;
        this.nextUsed = nextUsed & 0xffff;
        this.signalledUsedValid = false;
        this.notificationsEnabled = true;
        this.violation = null;
        pool.reset(size);
        this.active = true;
    }

    @Override
    public int freshState() {
        return 0;
    }

    /** Stops the queue (vhost-user GET_VRING_BASE, device reset). Chains in flight stay valid until returned. */
    @Override
    public void deactivate() {
        super.deactivate();
        inflight = null;
    }

    /** The next avail slot the device will read: vhost-user GET_VRING_BASE's answer. */
    public int nextAvail() {
        return nextAvail;
    }

    /** Logs the used ring at its own guest address: see {@link RingQueue#setDirtyLog(DirtyLog, long)}. */
    @Override
    public void setDirtyLog(DirtyLog log) {
        setDirtyLog(log, geometry == null ? 0 : geometry.used());
    }

    /** The next used slot the device will write. */
    public int nextUsed() {
        return nextUsed;
    }

    /**
     * Reads {@code avail->idx} once and checks it.
     *
     * @return whether there are entries between {@code nextAvail} and the new index
     */
    private boolean refreshAvailIdx() {
        // Acquire: pairs with the driver's write barrier between filling avail->ring[] (and the
        // descriptors) and storing avail->idx (virtio_wmb in Linux's virtqueue_add_split).
        // Entries we read below are therefore at least as new as this index.
        int idx = (short) U16.getAcquire(avail, (long) AVAIL_IDX) & 0xffff;
        int ahead = (idx - nextAvail) & 0xffff;
        if (ahead > size) {
            violate(Reason.AVAIL_INDEX_TOO_FAR, idx, nextAvail, ahead);
            return false;
        }
        shadowAvailIdx = idx;
        return ahead != 0;
    }

    /** Number of chains available as of the last read of {@code avail->idx}, refreshed if none. */
    @Override
    public int available() {
        if (!active || violation != null) {
            return 0;
        }
        try {
            if (nextAvail == shadowAvailIdx && !refreshAvailIdx()) {
                return 0;
            }
        } catch (InternalError e) {
            memoryFault();
            return 0;
        }
        return (shadowAvailIdx - nextAvail) & 0xffff;
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
            // A head the previous backend took and never completed (from the inflight region),
            // walked again from the descriptor table, which the driver has left alone since it
            // made the head available. Its avail slot is behind nextAvail already; its flag and
            // counter stay as they are.
            RingChain chain = take(inflight.nextResubmit(), size);
            if (chain != null) {
                popped(chain, nextAvail, false, true);
            }
            return chain;
        }
        if (nextAvail == shadowAvailIdx && !refreshAvailIdx()) {
            return null;
        }
        // Plain read: ordered after the acquire of avail->idx above.
        int head = avail.get(LE_U16, AVAIL_RING + 2L * (nextAvail & mask)) & 0xffff;
        RingChain chain = take(head, size);
        if (chain == null) {
            return null;
        }
        popped(chain, nextAvail, false, false);
        nextAvail = (nextAvail + 1) & 0xffff;
        if (inflight != null) {
            inflight.popped(head);
        }
        return chain;
    }

    /**
     * Puts back a chain the device does not want yet: the ring is as if it had never been popped
     * (the avail index steps back one, the inflight region forgets it, or a resubmitted head
     * waits to be resubmitted again), and the next pop returns the same head, walked again.
     * Several chains can be put back, the latest first (a network device that took buffers for
     * a frame and found too few), each while it is in flight and before the ring stops.
     *
     * @throws IllegalStateException for any other chain (nothing changes then)
     */
    @Override
    public void unpop(DescriptorChain chain) {
        RingChain rc = unpopping(chain);
        pool.give(rc);
        if (!active || violation != null) {
            return; // a stopped or broken ring keeps its indices
        }
        if (rc.resubmitted) {
            inflight.unresubmit();
        } else {
            nextAvail = rc.popAvail;
            if (inflight != null) {
                inflight.unpopped(rc.head());
            }
        }
    }

    /**
     * Tracks this (active) queue's requests in {@code region}, its part of the vhost-user
     * inflight region, and takes over what a predecessor left there: the heads it took and never
     * completed are served first, in the order it took them, and the avail ring is read from
     * the used index plus their number (vhost-user.rst, "Inflight I/O tracking"). Call after
     * {@link #activate} and before the first pop.
     */
    public InflightAttached attachInflight(MemorySegment region) {
        return attachInflight(region, size);
    }

    /** As {@link #attachInflight(MemorySegment)} for a region of {@code descNum} entries (at least the ring's size). */
    @Override
    public InflightAttached attachInflight(MemorySegment region, int descNum) {
        if (!active) {
            throw new IllegalStateException("queue " + index + " is not active");
        }
        SplitInflight.Attached a = SplitInflight.attach(region, descNum, size, nextUsed);
        inflight = a.tracker();
        if (a.resubmitted() > 0) {
            nextAvail = (nextUsed + a.resubmitted()) & 0xffff;
            shadowAvailIdx = nextAvail;
        }
        return new InflightAttached(a.resubmitted(), a.inconsistency(), null);
    }

    @Override
    public void addUsed(DescriptorChain chain, int writtenLength) {
        if (chain.owner() != index || !pool.handedOut(chain)) {
            throw new IllegalStateException("chain " + chain + " is not in flight on queue " + index);
        }
        if (Integer.toUnsignedLong(writtenLength) > chain.writableLength()) {
            // The driver trusts the used length: a device claiming more than the chain's writable
            // bytes would make it read past its buffers. Refused before anything changes.
            throw new IllegalArgumentException("written length " + Integer.toUnsignedString(writtenLength) + " exceeds the "
                    + chain.writableLength() + " writable bytes of chain " + chain.head() + " on queue " + index);
        }
        RingChain rc = (RingChain) chain;
        try {
            if (active && violation == null) { // nothing more is written to a broken or stopped ring
                writeUsed(rc, writtenLength);
            }
        } catch (InternalError e) {
            // A fault's error is delivered asynchronously: it may surface at writeUsed's return
            // rather than inside its own catch.
            memoryFault();
        } finally {
            // Only now: back in the pool, the chain may lose its buffers (which the log needed).
            pool.give(rc);
        }
    }

    /** Writes the used element of {@code chain} (not yet published) and logs what it wrote. */
    private void writeUsed(RingChain chain, int writtenLength) {
        long off = USED_RING + (long) USED_ELEM_SIZE * (nextUsed & mask);
        try {
            // struct virtq_used_elem { le32 id; le32 len; } as one little-endian 64-bit store
            used.set(LE_U64, off, (chain.head() & 0xffff_ffffL) | ((long) writtenLength << 32));
        } catch (InternalError e) {
            memoryFault();
            return;
        }
        DirtyLog log = dirtyLog();
        if (log != null) {
            logWritten(log, chain, writtenLength);
            log.mark(usedLogAddr + off, USED_ELEM_SIZE);
        }
        nextUsed = (nextUsed + 1) & 0xffff;
        if (inflight != null) {
            inflight.used(chain.head());
        }
    }

    @Override
    public boolean publishUsed() {
        try {
            return publish();
        } catch (InternalError e) {
            memoryFault();
            return false;
        }
    }

    private boolean publish() {
        if (!active || violation != null) {
            return false;
        }
        // Release: the used elements written by addUsed become visible no later than the index.
        // Pairs with the driver's read barrier after loading used->idx (virtio_rmb in Linux's
        // virtqueue_get_buf_ctx_split).
        U16.setRelease(used, (long) USED_IDX, (short) nextUsed);
        DirtyLog log = dirtyLog();
        if (log != null) {
            log.mark(usedLogAddr + USED_IDX, 2);
        }
        if (inflight != null) {
            inflight.published(nextUsed); // after the index: see SplitInflight.published
        }
        return needsInterrupt();
    }

    /**
     * Whether the driver wants an interrupt for the used entries published since the last
     * check. Remembers the used index it checked (like rust-vmm's {@code needs_notification}),
     * so ask once per publish.
     */
    private boolean needsInterrupt() {
        if (!active || violation != null) {
            return false;
        }
        // Full fence: our store of used->idx must be visible before we load used_event / flags,
        // or we race the driver re-enabling interrupts. Pairs with the driver's virtio_mb between
        // writing used_event and re-reading used->idx (virtqueue_enable_cb_delayed / poll).
        VarHandle.fullFence();
        int now = nextUsed;
        if (eventIdx) {
            int old = signalledUsed;
            boolean valid = signalledUsedValid;
            signalledUsed = now;
            signalledUsedValid = true;
            int usedEvent = avail.get(LE_U16, usedEventOffset) & 0xffff;
            return !valid || needEvent(usedEvent, now, old);
        }
        int flags = avail.get(LE_U16, (long) AVAIL_FLAGS) & 0xffff;
        return (flags & AVAIL_F_NO_INTERRUPT) == 0;
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
        if (eventIdx) {
            // "Kick me when you add the entry at shadowAvailIdx."
            used.set(LE_U16, availEventOffset, (short) shadowAvailIdx);
            DirtyLog log = dirtyLog();
            if (log != null) {
                log.mark(usedLogAddr + availEventOffset, 2);
            }
        } else {
            used.set(LE_U16, (long) USED_FLAGS, (short) 0);
        }
        notificationsEnabled = true;
        // Full fence: the avail_event / flags store must be visible before we re-read
        // avail->idx, or the driver may read the old value, skip its kick, and both sides sleep.
        // Pairs with the driver's virtio_mb between storing avail->idx and reading avail_event /
        // used->flags (virtqueue_kick_prepare_split).
        VarHandle.fullFence();
        return nextAvail != shadowAvailIdx || refreshAvailIdx();
    }

    @Override
    public void disableNotifications() {
        if (!active || violation != null || !notificationsEnabled) {
            return;
        }
        notificationsEnabled = false;
        if (!eventIdx) {
            // With EVENT_IDX a stale avail_event already suppresses kicks; nothing to write.
            try {
                used.set(LE_U16, (long) USED_FLAGS, (short) USED_F_NO_NOTIFY);
            } catch (InternalError e) {
                memoryFault();
            }
        }
    }

    @Override
    public String toString() {
        return "SplitQueue[" + index + (active ? ", size=" + size + ", nextAvail=" + nextAvail + ", nextUsed=" + nextUsed : ", inactive")
                + (violation != null ? ", broken: " + violation.reason() : "") + "]";
    }
}
