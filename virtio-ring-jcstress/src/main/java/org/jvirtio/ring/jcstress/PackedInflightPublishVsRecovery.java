package org.jvirtio.ring.jcstress;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.ring.PackedInflight;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * Packed inflight tracking (vhost-user.rst, QueueRegionPacked): the device writes the used
 * descriptor into the ring (its flags with a release store), then clears the chain's inflight
 * flag in the region and lets old_used_idx catch up. An observer reading what a backend started
 * after this one died would read (old_used_idx, then the head entry's inflight flag, then the
 * ring position's USED bit, each with acquire) must never find a state recovery gets wrong: the
 * flag cleared while the ring does not show the buffer used (the request would be lost: the
 * driver never hears of it), or old_used_idx moved past the buffer while its flag is still set
 * or the ring does not show it (recovery would resubmit it, or commit a return the driver cannot
 * see).
 */
@JCStressTest
@Description("packed: inflight flag and old_used_idx (region) vs the used descriptor (ring): recovery never duplicates or loses")
@Outcome(id = "0, 1, 0", expect = Expect.ACCEPTABLE, desc = "still in flight: resubmitted")
@Outcome(id = "0, 1, 1", expect = Expect.ACCEPTABLE, desc = "used in the ring, flag not yet cleared: recovery commits it from the ring's flags")
@Outcome(id = "0, 0, 1", expect = Expect.ACCEPTABLE, desc = "flag cleared, old_used_idx not yet moved: committed")
@Outcome(id = "2, 0, 1", expect = Expect.ACCEPTABLE, desc = "done (old_used_idx moved past the chain's two descriptors)")
@Outcome(expect = Expect.FORBIDDEN, desc = "a state recovery would get wrong")
public class PackedInflightPublishVsRecovery {
    static final VarHandle BYTE = ValueLayout.JAVA_BYTE.varHandle();
    static final VarHandle SHORT = ValueLayout.JAVA_SHORT.varHandle();
    /** Offsets in the region (vhost-user.rst): old_used_idx, and the first entry's inflight byte. */
    static final long OLD_USED_IDX = 18;
    static final long ENTRY0_INFLIGHT = 32;
    /** The packed descriptor's flags and its USED bit (VIRTIO 1.3, 2.8.1). */
    static final long DESC_FLAGS = 14;
    static final int USED = 1 << 15;

    @State
    public static class S extends RingState {
        final MemorySegment region = Arena.ofAuto().allocate(PackedInflight.queueRegionSize(4), 64);
        final DescriptorChain chain;

        public S() {
            super(true, true);
            device.attachInflight(region, 4);
            driver.add(addrs, lens, 2, 1, 0);
            driver.publish();
            chain = device.pop(); // its two descriptors copied to entries 0 and 1, entry 0 flagged
        }
    }

    @Actor
    public void device(S s) {
        s.device.addUsed(s.chain, 8);
        s.device.publishUsed();
    }

    @Actor
    public void observer(S s, III_Result r) {
        r.r1 = (short) SHORT.getAcquire(s.region, OLD_USED_IDX);
        r.r2 = (byte) BYTE.getAcquire(s.region, ENTRY0_INFLIGHT);
        int flags = (short) SHORT.getAcquire(s.memory.regionSegment(0), s.driver.descAddr() + DESC_FLAGS) & 0xffff;
        r.r3 = (flags & USED) != 0 ? 1 : 0;
    }
}
