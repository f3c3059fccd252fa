package org.jvirtio.ring;

import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;

/**
 * Two adjacent 64 KiB guest regions (separate memfd mappings) with a raw split ring in the
 * first: tests write descriptors and avail entries by hand, as a hostile driver would.
 */
final class RingFixture implements AutoCloseable {
    static final long LOW = 0x10000;
    static final long HIGH = 0x20000;
    static final long REGION = 0x10000;
    static final long RING_BASE = LOW;
    /** Data buffers start here (inside the low region, after the ring). */
    static final long DATA = LOW + 0x8000;

    final GuestMemory memory;
    final int size;
    final SplitRingLayout.Placement ring;
    final SplitQueue queue;
    final List<RingViolation> violations = new ArrayList<>();
    int availIdx;

    RingFixture(int size, long features) throws Exception {
        MemoryMapping a = MemoryMapping.memfd("low", REGION);
        MemoryMapping b = MemoryMapping.memfd("high", REGION);
        memory = GuestMemory.of(GuestRegion.of(LOW, a), GuestRegion.of(HIGH, b));
        a.release();
        b.release();
        this.size = size;
        this.ring = SplitRingLayout.place(RING_BASE, size);
        queue = new SplitQueue(0);
        queue.setViolationListener((q, v) -> violations.add(v));
        queue.activate(memory, size, ring.desc(), ring.avail(), ring.used(), features, 0, 0);
    }

    static long features(boolean eventIdx, boolean indirect) {
        long f = VirtioFeatures.bit(VirtioFeatures.VERSION_1);
        if (eventIdx) {
            f |= VirtioFeatures.bit(VirtioFeatures.EVENT_IDX);
        }
        if (indirect) {
            f |= VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC);
        }
        return f;
    }

    void desc(int id, long addr, int len, int flags, int next) {
        descAt(ring.desc() + 16L * id, addr, len, flags, next);
    }

    void descAt(long at, long addr, int len, int flags, int next) {
        memory.writeU64(at, addr);
        memory.writeU32(at + 8, len);
        memory.writeU16(at + 12, flags);
        memory.writeU16(at + 14, next);
    }

    /** Puts {@code head} in the next avail slot and publishes it. */
    void push(int head) {
        memory.writeU16(ring.avail() + 4 + 2L * (availIdx % size), head);
        availIdx = (availIdx + 1) & 0xffff;
        VarHandle.releaseFence();
        memory.writeU16(ring.avail() + 2, availIdx);
    }

    void setAvailIdx(int idx) {
        memory.writeU16(ring.avail() + 2, idx);
    }

    int usedIdx() {
        return memory.readU16(ring.used() + 2);
    }

    long usedElemId(int slot) {
        return memory.readU32(ring.used() + 4 + 8L * slot);
    }

    long usedElemLen(int slot) {
        return memory.readU32(ring.used() + 4 + 8L * slot + 4);
    }

    @Override
    public void close() {
        memory.release();
    }
}
