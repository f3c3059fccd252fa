package org.jvirtio.ring;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DirtyLog;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.Virtqueue;
import org.jvirtio.ring.RingViolation.Reason;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the device side of every ring layout shares, whatever its index protocol: the chain walker
 * ({@link ChainWalker}) and pool ({@link ChainPool}), the violation that breaks the queue and the
 * listener told of it, faults touching guest memory turned into a violation, and the dirty log the
 * queue marks while the front-end migrates. A subclass ({@link SplitQueue}, {@link PackedQueue}) adds the layout:
 * where heads come from, where used elements go, how notifications are suppressed.
 *
 * <p>One thread owns a queue and makes every call; there are no locks. No exception leaves a
 * queue because of guest data, and no access leaves guest memory.
 */
public abstract sealed class RingQueue implements Virtqueue permits SplitQueue, PackedQueue {
    private static final Logger LOG = LoggerFactory.getLogger(RingQueue.class);

    /** Buffers per chain a device accepts unless told otherwise (QEMU's VIRTQUEUE_MAX_SIZE). */
    public static final int DEFAULT_MAX_CHAIN_BUFFERS = 1024;

    /** Told once when a queue breaks. Called on the owning thread; must not throw. */
    @FunctionalInterface
    public interface ViolationListener {
        void onViolation(RingQueue queue, RingViolation violation);
    }

    final int index;
    final ChainWalker walker;
    final ChainPool pool;
    private ViolationListener listener;
    /** What broke the queue, or null. */
    RingViolation violation;
    /** Whether the ring is in use: activated, not deactivated since. */
    boolean active;
    /** The placement the queue was last activated with, or null. */
    RingGeometry geometry;
    /** Entries of the ring as activated. */
    int size;
    GuestMemory memory = GuestMemory.empty();
    /** The dirty log while the front-end migrates (null otherwise): one branch per used element. */
    private volatile DirtyLog dirtyLog;
    /** Where the device's ring area is logged (vhost-user's log_guest_addr; the area's guest address by default). */
    long usedLogAddr;

    /**
     * @param index           the queue's index in its device (for messages)
     * @param maxChainBuffers most buffers one chain may have after translation; longer chains
     *                        are a {@link Reason#CHAIN_TOO_LONG} violation
     */
    RingQueue(int index, int maxChainBuffers) {
        if (maxChainBuffers < 1) {
            throw new IllegalArgumentException("maxChainBuffers must be positive: " + maxChainBuffers);
        }
        this.index = index;
        this.walker = new ChainWalker(index, maxChainBuffers);
        this.pool = new ChainPool(index);
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
    public final void activate(GuestMemory memory, int size, long descAddr, long availAddr, long usedAddr,
                               long features, int nextAvail, int nextUsed) throws RingConfigurationException {
        checkNothingInFlight();
        active = false;
        activate(RingGeometry.of(index, memory, size, descAddr, availAddr, usedAddr, this instanceof PackedQueue), features,
                nextAvail, nextUsed);
    }

    /**
     * Validates and takes a ring nothing has used yet (a driver that just set it up): split from
     * index 0, packed from position 0 with both wrap counters 1.
     *
     * @throws RingConfigurationException with the reason, leaving the queue inactive
     */
    public final void activate(GuestMemory memory, int size, long descAddr, long availAddr, long usedAddr, long features)
            throws RingConfigurationException {
        boolean packed = this instanceof PackedQueue;
        activate(memory, size, descAddr, availAddr, usedAddr, features, packed ? PackedQueue.FRESH : 0, packed ? -1 : 0);
    }

    /** The ring state of a ring nothing has used yet, as {@link #activate(RingGeometry, long, int, int)} takes it. */
    public abstract int freshState();

    /**
     * A queue of the layout {@code features} negotiated: a {@link PackedQueue} with
     * VIRTIO_F_RING_PACKED, else a {@link SplitQueue}.
     */
    public static RingQueue create(int index, int maxChainBuffers, long features) {
        return org.jvirtio.api.VirtioFeatures.has(features, org.jvirtio.api.VirtioFeatures.RING_PACKED)
                ? new PackedQueue(index, maxChainBuffers) : new SplitQueue(index, maxChainBuffers);
    }

    /** Whether this queue speaks the packed layout. */
    public final boolean packed() {
        return this instanceof PackedQueue;
    }

    /**
     * Takes a ring placement judged by {@link RingGeometry#of} (not judged again); the queue
     * becomes active with the given indices.
     *
     * @param nextUsed the next used ring slot to write, or -1 for the index as found in the ring
     */
    public abstract void activate(RingGeometry g, long features, int nextAvail, int nextUsed);

    /** Stops the queue (vhost-user GET_VRING_BASE, device reset). Chains in flight stay valid until returned. */
    public void deactivate() {
        active = false;
        pops = (pops | 0xffff_ffffL) + 1; // a new era: no chain popped before the stop can be put back
    }

    /**
     * Pops that {@link #unpop} may still undo, counted: each pop takes the next number, each
     * put-back gives the latest one back. The high 32 bits change at every stop, so a chain from
     * before a stop never matches.
     */
    private long pops;

    /** Checks every chain and length {@link #addUsedTogether} is given before it writes anything. */
    final void checkUsed(org.jvirtio.api.DescriptorChain[] chains, int[] writtenLengths, int n) {
        for (int i = 0; i < n; i++) {
            org.jvirtio.api.DescriptorChain c = chains[i];
            if (c.owner() != index || !pool.handedOut(c)) {
                throw new IllegalStateException("chain " + c + " is not in flight on queue " + index);
            }
            if (Integer.toUnsignedLong(writtenLengths[i]) > c.writableLength()) {
                throw new IllegalArgumentException("written length " + Integer.toUnsignedString(writtenLengths[i]) + " exceeds the "
                        + c.writableLength() + " writable bytes of chain " + c.head() + " on queue " + index);
            }
        }
    }

    /** Every chain checked first, then returned one by one (published together by {@link #publishUsed}). */
    @Override
    public void addUsedTogether(org.jvirtio.api.DescriptorChain[] chains, int[] writtenLengths, int n) {
        checkUsed(chains, writtenLengths, n);
        for (int i = 0; i < n; i++) {
            addUsed(chains[i], writtenLengths[i]);
        }
    }

    /** Records that {@code c} was just popped from {@code avail} (wrap {@code wrap}), or resubmitted. */
    final void popped(RingChain c, int avail, boolean wrap, boolean resubmitted) {
        c.popSeq = ++pops;
        c.popAvail = avail;
        c.popWrap = wrap;
        c.resubmitted = resubmitted;
    }

    /**
     * The chain to put back, checked: it must be this queue's, in flight, and the latest pop not
     * yet undone (pops are undone last first; a chain returned with addUsed, or any chain popped
     * before one that was, cannot come back).
     *
     * @throws IllegalStateException otherwise (nothing changes then)
     */
    final RingChain unpopping(org.jvirtio.api.DescriptorChain chain) {
        if (!(chain instanceof RingChain rc) || rc.owner() != index || !pool.handedOut(rc) || rc.popSeq != pops) {
            throw new IllegalStateException("chain " + chain + " is not the latest chain popped from queue " + index
                    + " and not put back (chains are put back latest first, while in flight, before the ring stops)");
        }
        pops--;
        return rc;
    }

    public final boolean isActive() {
        return active;
    }

    /** The placement the queue was last activated with, or null (never activated). */
    public final RingGeometry geometry() {
        return geometry;
    }

    @Override
    public final int size() {
        return size;
    }

    public final GuestMemory memory() {
        return memory;
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

    @Override
    public final int index() {
        return index;
    }

    /** The violation that broke this queue, or null. */
    public final RingViolation violation() {
        return violation;
    }

    @Override
    public final boolean isBroken() {
        return violation != null;
    }

    @Override
    public final int inFlight() {
        return pool.inFlight();
    }

    /** Buffer entries the chain pool holds grown past their initial capacity (bounded near {@link ChainPool#RETAINED_BUFFERS}). */
    public final long retainedBuffers() {
        return pool.retained();
    }

    /**
     * Starts (or, with null, stops) logging the pages this queue writes: each used element's
     * writable bytes (what the device reports written, buffer by buffer) and what the device
     * writes in its ring area. The ring area is logged at {@code usedLogAddr} (vhost-user's
     * log_guest_addr, which may differ from the area's guest address). Callable from the control
     * thread while the queue runs: the queue thread reads the log once per used element.
     */
    public final void setDirtyLog(DirtyLog log, long usedLogAddr) {
        this.usedLogAddr = usedLogAddr;
        this.dirtyLog = log;
    }

    /** As {@link #setDirtyLog(DirtyLog, long)} with the ring area logged at its own guest address. */
    public abstract void setDirtyLog(DirtyLog log);

    /**
     * Tracks this (active) queue's requests in {@code region}, its part of the vhost-user
     * inflight region ({@link #inflightRegionSize} bytes for {@code descNum} entries, at least the
     * ring's size), and takes over what a predecessor left there: the requests it never
     * completed are served first, in the order it took them (vhost-user.rst, "Inflight I/O
     * tracking"). Call after {@link #activate} and before the first pop.
     */
    public abstract InflightAttached attachInflight(java.lang.foreign.MemorySegment region, int descNum);

    /** Bytes of one queue's part of the inflight region, in the layout of a split or a packed ring. */
    public static long inflightRegionSize(boolean packed, int queueSize) {
        return packed ? PackedInflight.queueRegionSize(queueSize) : SplitInflight.queueRegionSize(queueSize);
    }

    /** The dirty log now, or null: read once per used element. */
    final DirtyLog dirtyLog() {
        return dirtyLog;
    }

    /** Marks the first {@code n} writable bytes of {@code chain}, buffer by buffer. */
    static void logWritten(DirtyLog log, DescriptorChain chain, long n) {
        long left = Integer.toUnsignedLong((int) n);
        for (int i = chain.readableBufferCount(); i < chain.bufferCount() && left > 0; i++) {
            long len = Math.min(left, Integer.toUnsignedLong(chain.bufferLength(i)));
            log.mark(chain.bufferGuestAddress(i), len);
            left -= len;
        }
    }

    /** Refuses to reconfigure while chains are in flight: their completions still need this geometry. */
    final void checkNothingInFlight() {
        if (inFlight() != 0) {
            throw new IllegalStateException("queue " + index + " activated with " + inFlight() + " chains in flight");
        }
    }

    /** Breaks the queue (the first violation only) and tells the listener. */
    final void violate(RingViolation v) {
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

    final void violate(Reason reason, long a, long b, long c) {
        violate(new RingViolation(reason, index, a, b, c));
    }

    /**
     * A fault touching guest memory (SIGBUS: the front-end shrank a file it could not be kept
     * from shrinking) arrives as an {@code InternalError}: the queue breaks, like for any other
     * violation, instead of the thread ending.
     */
    final DescriptorChain memoryFault() {
        if (violation == null) {
            violate(Reason.MEMORY_FAULT, 0, 0, 0);
        }
        return null;
    }

    /** A pool chain walked from {@code head}, handed out; null (and broken) on a violation. */
    final RingChain take(int head, int size) {
        RingChain chain = pool.take();
        if (chain == null) {
            violate(Reason.TOO_MANY_IN_FLIGHT, head, size, 0);
            return null;
        }
        int capacity = chain.bufferCapacity();
        boolean ok;
        try {
            ok = walker.walk(chain, head);
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
        return chain;
    }
}
