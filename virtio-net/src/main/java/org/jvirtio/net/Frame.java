package org.jvirtio.net;

import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.DescriptorChain;

/**
 * A frame a port sent, on its way through the switch: the sender's transmit chain (the frame
 * stays in the sender's guest memory until every destination copied it), the header and
 * addresses read from it once, and a count of the destinations not done with it. One per
 * transmit slot, reused: nothing is allocated per frame.
 */
final class Frame implements SwitchFrame {
    final FrameOwner owner;
    final int slot;
    final NetHeader hdr = new NetHeader();
    DescriptorChain chain;
    SwitchPort from;
    /** The sender's queue pair: receivers use the same one (modulo theirs), so a flow stays on one queue. */
    int pair;
    /** Bytes of the frame (after the virtio header). */
    int length;
    long dst;
    long src;
    /**
     * Holders on the thread that began the frame (the sender, and receive queues of that thread
     * it was handed to): plain, that thread alone touches it.
     */
    private int localRefs;
    /**
     * Holders on other threads, plus one for the beginning thread's side while {@link #localRefs}
     * is above 0. A frame that never leaves its thread is forwarded without an atomic
     * instruction: each one waits for the stores before it (the copy into the receiver's guest
     * memory, its used element), which on a busy switch costs more than the instruction itself.
     */
    private final AtomicInteger refs = new AtomicInteger();
    /** The frame's first bytes, read once when it was taken (what stages decide on). */
    final byte[] head = new byte[HEAD];
    final java.lang.foreign.MemorySegment headSegment = java.lang.foreign.MemorySegment.ofArray(head);
    int headLength;
    /** A stage rewrote the Ethernet addresses: receivers take the first 12 bytes from {@link #head}. */
    boolean rewritten;

    Frame(FrameOwner owner, int slot) {
        this.owner = owner;
        this.slot = slot;
    }

    /** Starts the life of a frame: the sender holds the one reference. */
    void begin(DescriptorChain c, SwitchPort from, int pair, int length) {
        this.chain = c;
        this.from = from;
        this.pair = pair;
        this.length = length;
        localRefs = 1;
        // Release order suffices: a receive queue on another thread gets the frame through its
        // inbox's lock, after this store; the frame's last life ended in the sender's mailbox.
        refs.lazySet(1);
        rewritten = false;
    }

    @Override
    public SwitchPort from() {
        return from;
    }

    @Override
    public int length() {
        return length;
    }

    @Override
    public long destination() {
        return dst;
    }

    @Override
    public long source() {
        return src;
    }

    @Override
    public int etherType() {
        int t = u16(12);
        return t == 0x8100 && headLength >= 18 ? u16(16) : t;
    }

    private int u16(int at) {
        return ((head[at] & 0xff) << 8) | (head[at + 1] & 0xff);
    }

    @Override
    public int byteAt(int offset) {
        return offset >= 0 && offset < headLength ? head[offset] & 0xff : -1;
    }

    @Override
    public NetHeader header() {
        return hdr;
    }

    @Override
    public void rewriteDestination(long mac) {
        dst = mac & 0xffff_ffff_ffffL;
        putMac(0, dst);
    }

    @Override
    public void rewriteSource(long mac) {
        src = mac & 0xffff_ffff_ffffL;
        putMac(6, src);
    }

    private void putMac(int at, long mac) {
        for (int i = 0; i < 6; i++) {
            head[at + i] = (byte) (mac >>> (8 * (5 - i)));
        }
        rewritten = true;
    }

    /** One more destination, on another thread, holds the frame (called by the beginning thread). */
    void retain() {
        refs.incrementAndGet();
    }

    /** One more destination on the beginning thread holds the frame (called on that thread). */
    void retainHere() {
        localRefs++;
    }

    /**
     * A holder on another thread is done with the frame (copied or dropped); the last one returns
     * the sender's chain to its driver.
     *
     * @return whether that was the last reference
     */
    boolean release() {
        int n = refs.decrementAndGet();
        if (n == 0) {
            owner.sent(this);
            return true;
        }
        if (n < 0) {
            throw new IllegalStateException("frame of slot " + slot + " released once too often");
        }
        return false;
    }

    /** As {@link #release()}, for a holder on the beginning thread ({@link #retainHere}), on that thread. */
    boolean releaseHere() {
        if (localDone()) {
            owner.sent(this);
            return true;
        }
        return false;
    }

    /** The sender drops its own reference (on its thread); true when nobody else holds the frame, which is then done. */
    boolean releaseOwn() {
        return localDone();
    }

    /** One holder of the beginning thread let go: true when that was the last holder anywhere. */
    private boolean localDone() {
        int n = --localRefs;
        if (n > 0) {
            return false;
        }
        if (n < 0) {
            throw new IllegalStateException("frame of slot " + slot + " released once too often");
        }
        // No holder is left on this thread, and none can come: only the sender adds holders, and
        // it has let go. When no other thread holds the frame either (its count is this side's 1;
        // the volatile read sees every other thread's release, and what it did before), it is
        // done without an atomic instruction; else this side's 1 goes, and the last one out ends it.
        return refs.get() == 1 || refs.decrementAndGet() == 0;
    }

    /** The frame's bytes start this far into the chain's readable bytes. */
    static final int DATA = VirtioNet.HDR_SIZE;
}
