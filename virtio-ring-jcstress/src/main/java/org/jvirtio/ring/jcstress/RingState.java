package org.jvirtio.ring.jcstress;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.ring.SplitRingLayout;

/**
 * One tiny ring (size 4) in native memory shared by a driver actor and a device actor. The two
 * halves share nothing but that memory, exactly as a guest and a backend.
 */
class RingState {
    static final long DATA = 0x200;
    static final int MEM = 0x400;

    final GuestMemory memory;
    final SplitQueueDriver driver;
    final SplitQueue device;
    final long[] addrs = {DATA, DATA + 0x10};
    final int[] lens = {8, 8};

    RingState(boolean eventIdx) {
        MemorySegment seg = Arena.ofAuto().allocate(MEM, 4096);
        memory = GuestMemory.of(GuestRegion.of(0, MemoryMapping.ofSegment(seg)));
        long features = VirtioFeatures.mask(VirtioFeatures.VERSION_1)
                | (eventIdx ? VirtioFeatures.bit(VirtioFeatures.EVENT_IDX) : 0);
        SplitRingLayout.Placement p = SplitRingLayout.place(0, 4);
        driver = new SplitQueueDriver(memory, 4, p.desc(), p.avail(), p.used(), features, -1, 0);
        device = new SplitQueue(0);
        try {
            device.activate(memory, 4, p.desc(), p.avail(), p.used(), features, 0, 0);
        } catch (RingConfigurationException e) {
            throw new IllegalStateException(e);
        }
    }
}
