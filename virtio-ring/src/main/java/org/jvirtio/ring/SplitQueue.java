package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.Virtqueue;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.RingViolation.Reason;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

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
 * <p><b>Allocation.</b> Chains come from a per-queue pool of {@code size} objects whose buffer
 * arrays grow to the largest chain seen and are then reused: no allocation per chain in steady
 * state. What the pool keeps is bounded ({@link #RETAINED_BUFFERS}): a guest that once sent
 * every chain at the longest length would otherwise leave 16 bytes per buffer times 1024 times
 * 1024 (16 MiB) behind on one queue. Past the bound, a long chain returned to the pool gives its
 * arrays back.
 */
public final class SplitQueue implements Virtqueue {
    private static final Logger LOG = LoggerFactory.getLogger(SplitQueue.class);

    /**
     * Buffer entries (16 bytes each) the chain pool keeps grown, all chains together: 1 MiB, room
     * for 128 chains of 512 buffers, well above what a guest's large I/O keeps in flight.
     */
    public static final int RETAINED_BUFFERS = 65_536;

    /** Buffers per chain a device accepts unless told otherwise (QEMU's VIRTQUEUE_MAX_SIZE). */
    public static final int DEFAULT_MAX_CHAIN_BUFFERS = 1024;

    /** Told once when a queue breaks. Called on the owning thread; must not throw. */
    @FunctionalInterface
    public interface ViolationListener {
        void onViolation(SplitQueue queue, RingViolation violation);
    }

    private final int index;
    private final int maxChainBuffers;
    private ViolationListener listener;

    // ---- geometry, fixed while active ----
    private boolean active;
    private RingGeometry geometry;
    private int size;
    private int mask;
    private long descAddr;
    private long availAddr;
    private long usedAddr;
    private boolean eventIdx;
    private boolean indirect;
    private GuestMemory memory = GuestMemory.empty();
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

    private RingViolation violation;
    /**
     * The chain the last successful pop returned: the one chain {@link #unpop} may put back while
     * it is still in flight. Null once put back, or when the ring stops.
     */
    private RingChain lastPopped;
    /** Whether {@link #lastPopped} came from the inflight region's resubmissions, not the avail ring. */
    private boolean lastPoppedResubmitted;
    /** The vhost-user inflight region's part for this queue, or null (not tracked). */
    private SplitInflight inflight;
    /** The dirty log while the front-end migrates (null otherwise): one branch per used element. */
    private volatile org.jvirtio.api.DirtyLog dirtyLog;
    /** Where the used ring is logged (vhost-user's log_guest_addr; the used ring's guest address by default). */
    private long usedLogAddr;

    /** The region the last translated buffer was in: most buffers of a guest share one. */
    private int cachedRegion;
    private long cachedRegionStart;
    /** 0 means "no cached region": nothing is inside a region of size 0. */
    private long cachedRegionSize;

    // ---- chain pool ----
    /** Buffer entries the pool's chains hold grown beyond their initial capacity, all together. */
    private long retained;
    private RingChain[] pool = new RingChain[0];
    private int[] free = new int[0];
    private boolean[] inUse = new boolean[0];
    private int freeTop;

    public SplitQueue(int index) {
        this(index, DEFAULT_MAX_CHAIN_BUFFERS);
    }

    /**
     * @param index           the queue's index in its device (for messages)
     * @param maxChainBuffers most buffers one chain may have after translation; longer chains
     *                        are a {@link Reason#CHAIN_TOO_LONG} violation
     */
    public SplitQueue(int index, int maxChainBuffers) {
        if (maxChainBuffers < 1) {
            throw new IllegalArgumentException("maxChainBuffers must be positive: " + maxChainBuffers);
        }
        this.index = index;
        this.maxChainBuffers = maxChainBuffers;
    }

    public void setViolationListener(ViolationListener listener) {
        this.listener = listener;
    }

    /**
     * Validates and takes a ring geometry; the queue becomes active with the given indices.
     * Every call validates again: a size or address is never trusted because an earlier one
     * was fine.
     *
     * @param memory    guest memory (retained by the caller for as long as the queue is active)
     * @param features  negotiated features (EVENT_IDX and INDIRECT_DESC matter here)
     * @param nextAvail the next avail ring slot to read (vhost-user SET_VRING_BASE; 0 for a new ring)
     * @param nextUsed  the next used ring slot to write, or -1 for {@code used->idx} as found in
     *                  the ring (a ring the device served before: vhost-user after a restart)
     * @throws RingConfigurationException with the reason, leaving the queue inactive
     */
    public void activate(GuestMemory memory, int size, long descAddr, long availAddr, long usedAddr,
                         long features, int nextAvail, int nextUsed) throws RingConfigurationException {
        checkNothingInFlight();
        active = false;
        activate(RingGeometry.of(index, memory, size, descAddr, availAddr, usedAddr), features, nextAvail, nextUsed);
    }

    /**
     * Takes a ring placement judged by {@link RingGeometry#of} (not judged again); the queue
     * becomes active with the given indices.
     *
     * @param nextUsed the next used ring slot to write, or -1 for {@code used->idx} as found in the ring
     * @see #activate(GuestMemory, int, long, long, long, long, int, int)
     */
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
        this.cachedRegionSize = 0;
        this.size = size;
        this.mask = size - 1;
        this.descAddr = g.desc();
        this.availAddr = g.avail();
        this.usedAddr = g.used();
        this.desc = d;
        this.avail = a;
        this.used = u;
        this.usedEventOffset = availUsedEventOffset(size);
        this.availEventOffset = usedAvailEventOffset(size);
        this.eventIdx = VirtioFeatures.has(features, VirtioFeatures.EVENT_IDX);
        this.indirect = VirtioFeatures.has(features, VirtioFeatures.INDIRECT_DESC);
        this.nextAvail = nextAvail & 0xffff;
        this.inflight = null;
        this.shadowAvailIdx = this.nextAvail;
        this.nextUsed = nextUsed & 0xffff;
        this.signalledUsedValid = false;
        this.notificationsEnabled = true;
        this.violation = null;
        ensurePool(size);
        this.active = true;
    }

    private void checkNothingInFlight() {
        if (inFlight() != 0) {
            // Refused before anything changes: those chains' completions still need this geometry.
            throw new IllegalStateException("queue " + index + " activated with " + inFlight() + " chains in flight");
        }
    }

    /**
     * Whether a ring of {@code size} entries can live at these guest addresses: see
     * {@link RingGeometry}, where ring geometry is judged.
     *
     * @return null when it can, or the violation
     */
    public static RingViolation checkGeometry(int queue, GuestMemory memory, int size, long descAddr, long availAddr, long usedAddr) {
        return RingGeometry.check(queue, memory, size, descAddr, availAddr, usedAddr);
    }

    /** The placement the queue was last activated with, or null (never activated). */
    public RingGeometry geometry() {
        return geometry;
    }

    private void ensurePool(int n) {
        if (inFlight() != 0) {
            throw new IllegalStateException("queue " + index + " reconfigured with " + inFlight() + " chains in flight");
        }
        if (pool.length != n) {
            pool = new RingChain[n];
            for (int i = 0; i < n; i++) {
                pool[i] = new RingChain(index, i);
            }
            free = new int[n];
            inUse = new boolean[n];
            retained = 0;
        }
        for (int i = 0; i < n; i++) {
            free[i] = n - 1 - i;
            inUse[i] = false;
        }
        freeTop = n;
    }

    /** Stops the queue (vhost-user GET_VRING_BASE, device reset). Chains in flight stay valid until returned. */
    public void deactivate() {
        active = false;
        inflight = null;
        lastPopped = null;
    }

    public boolean isActive() {
        return active;
    }

    @Override
    public int index() {
        return index;
    }

    @Override
    public int size() {
        return size;
    }

    public GuestMemory memory() {
        return memory;
    }

    /** The next avail slot the device will read: vhost-user GET_VRING_BASE's answer. */
    public int nextAvail() {
        return nextAvail;
    }

    /** Buffer entries the chain pool holds grown past their initial capacity (bounded near {@link #RETAINED_BUFFERS}). */
    public long retainedBuffers() {
        return retained;
    }

    /**
     * Starts (or, with null, stops) logging the pages this queue writes: each used element's
     * writable bytes (what the device reports written, buffer by buffer), the used element and
     * index, and avail_event. The used ring is logged at {@code usedLogAddr} (vhost-user's
     * log_guest_addr, which may differ from the ring's guest address). Callable from the control
     * thread while the queue runs: the queue thread reads the log once per used element.
     */
    public void setDirtyLog(org.jvirtio.api.DirtyLog log, long usedLogAddr) {
        this.usedLogAddr = usedLogAddr;
        this.dirtyLog = log;
    }

    /** As {@link #setDirtyLog(org.jvirtio.api.DirtyLog, long)} with the used ring logged at its own guest address. */
    public void setDirtyLog(org.jvirtio.api.DirtyLog log) {
        setDirtyLog(log, usedAddr);
    }

    /** Marks the first {@code n} writable bytes of {@code chain}, buffer by buffer. */
    private static void logWritten(org.jvirtio.api.DirtyLog log, DescriptorChain chain, long n) {
        long left = Integer.toUnsignedLong((int) n);
        for (int i = chain.readableBufferCount(); i < chain.bufferCount() && left > 0; i++) {
            long len = Math.min(left, Integer.toUnsignedLong(chain.bufferLength(i)));
            log.mark(chain.bufferGuestAddress(i), len);
            left -= len;
        }
    }

    /** Guest address of the descriptor table (as activated). */
    public long descAddr() {
        return descAddr;
    }

    /** Guest address of the avail ring (as activated). */
    public long availAddr() {
        return availAddr;
    }

    /** Guest address of the used ring (as activated). */
    public long usedAddr() {
        return usedAddr;
    }

    /** The next used slot the device will write. */
    public int nextUsed() {
        return nextUsed;
    }

    /** The violation that broke this queue, or null. */
    public RingViolation violation() {
        return violation;
    }

    @Override
    public boolean isBroken() {
        return violation != null;
    }

    @Override
    public int inFlight() {
        return pool.length - freeTop;
    }

    private void violate(RingViolation v) {
        if (violation != null) {
            return;
        }
        violation = v;
        LOG.warn("{}; queue stopped until reset", v.message());
        ViolationListener l = listener;
        if (l != null) {
            try {
                l.onViolation(this, v);
            } catch (RuntimeException e) {
                LOG.error("violation listener of queue {} threw", index, e);
            }
        }
    }

    private boolean violate(Reason reason, long a, long b, long c) {
        violate(new RingViolation(reason, index, a, b, c));
        return false;
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
            return violate(Reason.AVAIL_INDEX_TOO_FAR, idx, nextAvail, ahead);
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

    /**
     * A fault touching guest memory (SIGBUS: the front-end shrank a file it could not be kept
     * from shrinking) arrives as an {@code InternalError}: the queue breaks, like for any other
     * violation, instead of the thread ending.
     */
    private DescriptorChain memoryFault() {
        if (violation == null) {
            violate(Reason.MEMORY_FAULT, 0, 0, 0);
        }
        return null;
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
            RingChain chain = take(inflight.nextResubmit());
            lastPopped = chain;
            lastPoppedResubmitted = true;
            return chain;
        }
        if (nextAvail == shadowAvailIdx && !refreshAvailIdx()) {
            return null;
        }
        // Plain read: ordered after the acquire of avail->idx above.
        int head = avail.get(LE_U16, AVAIL_RING + 2L * (nextAvail & mask)) & 0xffff;
        RingChain chain = take(head);
        if (chain == null) {
            return null;
        }
        nextAvail = (nextAvail + 1) & 0xffff;
        if (inflight != null) {
            inflight.popped(head);
        }
        lastPopped = chain;
        if (lastPoppedResubmitted) {
            lastPoppedResubmitted = false; // a read, not a store, per pop once the resubmissions are done
        }
        return chain;
    }

    /**
     * Puts back the chain the last {@link #pop()} returned, which the device does not want yet:
     * the ring is as if it had never been popped (the avail index steps back one, the inflight
     * region forgets it, or a resubmitted head waits to be resubmitted again), and the next pop
     * returns the same head, walked again. Only that chain, while it is in flight and before
     * another chain is popped or the ring stops.
     *
     * @throws IllegalStateException for any other chain (nothing changes then)
     */
    @Override
    public void unpop(DescriptorChain chain) {
        if (chain == null || chain != lastPopped || !inUse[lastPopped.slot]) {
            throw new IllegalStateException("chain " + chain + " is not the last chain popped from queue " + index
                    + " (only that one can be put back, before anything else happens on the queue)");
        }
        RingChain rc = lastPopped;
        lastPopped = null;
        inUse[rc.slot] = false;
        free[freeTop++] = rc.slot;
        if (!active || violation != null) {
            return; // a stopped or broken ring keeps its indices
        }
        if (lastPoppedResubmitted) {
            inflight.unresubmit();
        } else {
            nextAvail = (nextAvail - 1) & 0xffff;
            if (inflight != null) {
                inflight.unpopped(rc.head());
            }
        }
    }

    /** A pool chain walked from {@code head}, in use; null (and broken) on a violation. */
    private RingChain take(int head) {
        if (freeTop == 0) {
            violate(Reason.TOO_MANY_IN_FLIGHT, head, size, 0);
            return null;
        }
        RingChain chain = pool[free[--freeTop]];
        boolean ok;
        int capacity = chain.bufferCapacity();
        try {
            ok = walk(chain, head);
        } catch (InternalError e) {
            free[freeTop++] = chain.slot;
            throw e;
        } finally {
            retained += chain.bufferCapacity() - capacity;
        }
        if (!ok) {
            free[freeTop++] = chain.slot;
            return null;
        }
        inUse[chain.slot] = true;
        return chain;
    }

    /**
     * Tracks this (active) queue's requests in {@code region}, its part of the vhost-user
     * inflight region, and takes over what a predecessor left there: the heads it took and never
     * completed are served first, in the order it took them, and the avail ring is read from
     * the used index plus their number (vhost-user.rst, "Inflight I/O tracking"). Call after
     * {@link #activate} and before the first pop.
     */
    public SplitInflight.Attached attachInflight(MemorySegment region) {
        return attachInflight(region, size);
    }

    /** As {@link #attachInflight(MemorySegment)} for a region of {@code descNum} entries (at least the ring's size). */
    public SplitInflight.Attached attachInflight(MemorySegment region, int descNum) {
        if (!active) {
            throw new IllegalStateException("queue " + index + " is not active");
        }
        SplitInflight.Attached a = SplitInflight.attach(region, descNum, size, nextUsed);
        inflight = a.tracker();
        if (a.resubmitted() > 0) {
            nextAvail = (nextUsed + a.resubmitted()) & 0xffff;
            shadowAvailIdx = nextAvail;
        }
        return a;
    }

    /** Walks the chain at {@code head} into {@code chain}; false (and broken) on a violation. */
    private boolean walk(RingChain chain, int head) {
        if (head >= size) {
            return violate(Reason.HEAD_OUT_OF_RANGE, head, size, 0);
        }
        chain.start(memory, head);
        seenWritable = false;
        int id = head;
        int count = 0;
        while (true) {
            if (++count > size) {
                return violate(Reason.DESCRIPTOR_LOOP, head, size, 0);
            }
            long base = (long) id * DESC_SIZE;
            // Each field read once into a local (TOCTOU): the guest may change them meanwhile.
            // len, flags and next are one little-endian 64-bit word.
            long addr = desc.get(LE_U64, base + DESC_ADDR);
            long word = desc.get(LE_U64, base + DESC_LEN);
            int len = (int) word;
            int flags = (int) (word >>> 32) & 0xffff;
            int next = (int) (word >>> 48);
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    return violate(Reason.INDIRECT_NOT_NEGOTIATED, id, 0, 0);
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    return violate(Reason.INDIRECT_WITH_NEXT, id, 0, 0);
                }
                // VIRTIO 1.3, 2.7.5.3.2: zero or more direct descriptors, then one indirect one;
                // its WRITE flag is ignored.
                return walkIndirect(chain, addr, Integer.toUnsignedLong(len));
            }
            if (!take(chain, addr, len, flags, id)) {
                return false;
            }
            if ((flags & DESC_F_NEXT) == 0) {
                return true;
            }
            if (next >= size) {
                return violate(Reason.NEXT_OUT_OF_RANGE, next, size, id);
            }
            id = next;
        }
    }

    private boolean walkIndirect(RingChain chain, long tableAddr, long tableLen) {
        if (tableLen == 0) {
            return violate(Reason.INDIRECT_TABLE_EMPTY, tableAddr, 0, 0);
        }
        if ((tableLen & (DESC_SIZE - 1)) != 0) {
            return violate(Reason.INDIRECT_TABLE_LENGTH, tableLen, tableAddr, 0);
        }
        long entries = tableLen / DESC_SIZE;
        if (entries > MAX_SIZE) {
            return violate(Reason.INDIRECT_TABLE_TOO_LARGE, entries, MAX_SIZE, 0);
        }
        int count = (int) entries;
        // Usually the table lies in one region: read it in place. A table that crosses a region
        // boundary is legal (memory is not contiguous on the host); read it through GuestMemory.
        MemorySegment seg = null;
        long segBase = 0;
        int r = memory.findRegion(tableAddr);
        if (r >= 0 && tableLen <= memory.regionSize(r) - (tableAddr - memory.regionStart(r))) {
            seg = memory.regionSegment(r);
            segBase = tableAddr - memory.regionStart(r);
        } else if (!memory.contains(tableAddr, tableLen)) {
            return violate(Reason.INDIRECT_TABLE_OUTSIDE_MEMORY, tableAddr, tableLen, 0);
        }
        int id = 0;
        int walked = 0;
        while (true) {
            if (++walked > count) {
                return violate(Reason.INDIRECT_LOOP, walked, count, 0);
            }
            long off = (long) id * DESC_SIZE;
            long addr;
            int len;
            int flags;
            int next;
            if (seg != null) {
                addr = seg.get(LE_U64, segBase + off + DESC_ADDR);
                long word = seg.get(LE_U64, segBase + off + DESC_LEN);
                len = (int) word;
                flags = (int) (word >>> 32) & 0xffff;
                next = (int) (word >>> 48);
            } else {
                long e = tableAddr + off;
                addr = memory.readU64(e + DESC_ADDR);
                len = (int) memory.readU32(e + DESC_LEN);
                flags = memory.readU16(e + DESC_FLAGS);
                next = memory.readU16(e + DESC_NEXT);
            }
            if ((flags & DESC_F_INDIRECT) != 0) {
                return violate(Reason.NESTED_INDIRECT, id, 0, 0);
            }
            if (!take(chain, addr, len, flags, id)) {
                return false;
            }
            if ((flags & DESC_F_NEXT) == 0) {
                return true;
            }
            if (next >= count) {
                return violate(Reason.INDIRECT_NEXT_OUT_OF_RANGE, next, count, id);
            }
            id = next;
        }
    }

    /** Whether the chain being walked has had a device-writable descriptor yet. */
    private boolean seenWritable;

    /**
     * Checks one descriptor against the chain so far (no readable after writable, totals within
     * 32 bits) and adds its buffer.
     */
    private boolean take(RingChain chain, long addr, int len, int flags, int id) {
        boolean w = (flags & DESC_F_WRITE) != 0;
        if (w) {
            seenWritable = true;
        } else if (seenWritable) {
            return violate(Reason.READABLE_AFTER_WRITABLE, id, 0, 0);
        }
        // VIRTIO 1.3, 2.7.5.1: the whole chain (readable and writable together) stays below 2^32.
        long total = chain.writableLength() + chain.readableLength() + Integer.toUnsignedLong(len);
        if (total > 0xffff_ffffL) {
            return violate(Reason.LENGTH_OVERFLOW, total, 0, 0);
        }
        return addBuffer(chain, addr, len, w, id);
    }

    /** Translates one descriptor's buffer, splitting it where it crosses regions. */
    private boolean addBuffer(RingChain chain, long addr, int len, boolean writable, int descId) {
        if (len == 0) {
            return true; // nothing to read or write; not an error (VIRTIO 1.3 does not forbid it)
        }
        long left = Integer.toUnsignedLong(len);
        if (Long.compareUnsigned(addr + left - 1, addr) < 0) {
            return violate(Reason.ADDRESS_OUT_OF_RANGE, addr, left, descId);
        }
        if (chain.bufferCount() >= maxChainBuffers) {
            return violate(Reason.CHAIN_TOO_LONG, chain.head(), maxChainBuffers, 0);
        }
        // Fast path: the whole buffer inside the region the previous buffer was in.
        long rel = addr - cachedRegionStart;
        if (Long.compareUnsigned(rel, cachedRegionSize) < 0 && left <= cachedRegionSize - rel) {
            chain.add(cachedRegion, rel, len, writable);
            return true;
        }
        GuestMemory mem = memory;
        long a = addr;
        while (left > 0) {
            int r = mem.findRegion(a);
            if (r < 0) {
                return violate(Reason.ADDRESS_OUT_OF_RANGE, addr, Integer.toUnsignedLong(len), descId);
            }
            long off = a - mem.regionStart(r);
            long n = Math.min(left, mem.regionSize(r) - off);
            if (chain.bufferCount() >= maxChainBuffers) {
                return violate(Reason.CHAIN_TOO_LONG, chain.head(), maxChainBuffers, 0);
            }
            chain.add(r, off, (int) n, writable);
            cachedRegion = r;
            cachedRegionStart = mem.regionStart(r);
            cachedRegionSize = mem.regionSize(r);
            a += n;
            left -= n;
        }
        return true;
    }

    @Override
    public void addUsed(DescriptorChain chain, int writtenLength) {
        int slot = chain instanceof RingChain rc ? rc.slot : -1;
        if (chain.owner() != index || slot < 0 || slot >= pool.length || pool[slot] != chain || !inUse[slot]) {
            throw new IllegalStateException("chain " + chain + " is not in flight on queue " + index);
        }
        if (Integer.toUnsignedLong(writtenLength) > chain.writableLength()) {
            // The driver trusts the used length: a device claiming more than the chain's writable
            // bytes would make it read past its buffers. Refused before anything changes.
            throw new IllegalArgumentException("written length " + Integer.toUnsignedString(writtenLength) + " exceeds the "
                    + chain.writableLength() + " writable bytes of chain " + chain.head() + " on queue " + index);
        }
        inUse[slot] = false;
        free[freeTop++] = slot;
        if (retained > RETAINED_BUFFERS && pool[slot].bufferCapacity() > RingChain.KEEP_BUFFERS) {
            retained -= pool[slot].trimBuffers();
        }
        if (!active || violation != null) {
            return; // nothing more is written to a broken or stopped ring
        }
        long off = USED_RING + (long) USED_ELEM_SIZE * (nextUsed & mask);
        try {
            // struct virtq_used_elem { le32 id; le32 len; } as one little-endian 64-bit store
            used.set(LE_U64, off, (chain.head() & 0xffff_ffffL) | ((long) writtenLength << 32));
        } catch (InternalError e) {
            memoryFault();
            return;
        }
        org.jvirtio.api.DirtyLog log = dirtyLog;
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
        org.jvirtio.api.DirtyLog log = dirtyLog;
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
            org.jvirtio.api.DirtyLog log = dirtyLog;
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
