package org.jvirtio.ring;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;

/** A chain of a ring queue's pool: the queue fills it in; devices only read it. */
final class RingChain extends DescriptorChain {
    /** This chain's index in its queue's pool. */
    final int slot;
    /**
     * Where this chain stands among the pops that may still be undone: {@link RingQueue}'s pop
     * count when it was popped (a chain can be put back only while its number is the latest).
     */
    long popSeq;
    /** The ring position its pop began at (the avail index; the packed ring's descriptor position). */
    int popAvail;
    /** The packed ring's driver wrap counter at {@link #popAvail}. */
    boolean popWrap;
    /** Whether it came from the inflight region's resubmissions, not the ring. */
    boolean resubmitted;

    RingChain(int owner, int slot) {
        super(owner);
        this.slot = slot;
    }

    void start(GuestMemory memory, int head) {
        reset(memory, head);
    }

    /** The packed ring's buffer id, known at the chain's last descriptor. */
    void id(int id) {
        setHead(id);
    }

    /** Chains of up to this many buffers are never trimmed: what large guest I/O needs. */
    static final int KEEP_BUFFERS = 256;

    int bufferCapacity() {
        return capacity();
    }

    int trimBuffers() {
        return trim();
    }

    void add(int region, long offset, int length, boolean writable) {
        append(region, offset, length, writable);
    }
}
