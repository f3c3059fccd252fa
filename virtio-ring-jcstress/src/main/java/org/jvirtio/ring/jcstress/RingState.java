package org.jvirtio.ring.jcstress;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitQueue;

/**
 * One tiny ring (size 4) in native memory shared by a driver actor and a device actor, split or
 * packed. The two halves share nothing but that memory, exactly as a guest and a backend.
 */
class RingState {
    static final long DATA = 0x200;
    static final int MEM = 0x400;

    final GuestMemory memory;
    final QueueDriver driver;
    final RingQueue device;
    final long[] addrs = {DATA, DATA + 0x10};
    final int[] lens = {8, 8};

    RingState(boolean eventIdx) {
        this(eventIdx, false);
    }

    RingState(boolean eventIdx, boolean packed) {
        MemorySegment seg = Arena.ofAuto().allocate(MEM, 4096);
        memory = GuestMemory.of(GuestRegion.of(0, MemoryMapping.ofSegment(seg)));
        long features = VirtioFeatures.mask(VirtioFeatures.VERSION_1)
                | (eventIdx ? VirtioFeatures.bit(VirtioFeatures.EVENT_IDX) : 0)
                | (packed ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0);
        driver = QueueDriver.at(memory, 0, 4, features, -1, 0);
        device = RingQueue.create(0, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS, features);
        try {
            device.activate(memory, 4, driver.descAddr(), driver.availAddr(), driver.usedAddr(), features);
        } catch (RingConfigurationException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The device as a split queue (for what only split has: the inflight region). */
    SplitQueue split() {
        return (SplitQueue) device;
    }
}
