package org.jvirtio.ring.jcstress;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.ring.SplitInflight;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * Inflight tracking (issue 12): the device publishes a used element (used->idx, a release
 * store) and then clears the head's inflight flag and stores the region's used_idx. An observer
 * reading what a backend started after this one died would read (region used_idx, then the
 * flag, then used->idx, each with acquire) must never find a state the recovery gets wrong: the
 * region's used_idx moved while the flag is still set (the request would run twice), or the flag
 * cleared while used->idx has not moved (the request would be lost).
 */
@JCStressTest
@Description("inflight flag and used_idx (region) vs used->idx (ring): recovery never duplicates or loses")
@Outcome(id = "0, 1, 0", expect = Expect.ACCEPTABLE, desc = "still in flight: resubmitted")
@Outcome(id = "0, 1, 1", expect = Expect.ACCEPTABLE, desc = "published, not yet cleared: the last batch is repaired")
@Outcome(id = "0, 0, 1", expect = Expect.ACCEPTABLE, desc = "cleared, used_idx not yet stored: repaired (a no-op)")
@Outcome(id = "1, 0, 1", expect = Expect.ACCEPTABLE, desc = "done")
@Outcome(expect = Expect.FORBIDDEN, desc = "a state recovery would get wrong")
public class InflightPublishVsRecovery {
    static final VarHandle BYTE = ValueLayout.JAVA_BYTE.varHandle();
    static final VarHandle SHORT = ValueLayout.JAVA_SHORT.varHandle();

    @State
    public static class S extends RingState {
        final MemorySegment region = Arena.ofAuto().allocate(SplitInflight.queueRegionSize(4), 64);
        final DescriptorChain chain;
        final long flag;

        public S() {
            super(true);
            split().attachInflight(region);
            driver.add(addrs, lens, 2, 1, 0);
            driver.publish();
            chain = device.pop(); // marked in flight
            device.addUsed(chain, 8); // in the last batch, not yet published
            flag = 16 + 16L * chain.head();
        }
    }

    @Actor
    public void device(S s) {
        s.device.publishUsed();
    }

    @Actor
    public void observer(S s, III_Result r) {
        r.r1 = (short) SHORT.getAcquire(s.region, 14L);
        r.r2 = (byte) BYTE.getAcquire(s.region, s.flag);
        r.r3 = usedIdx(s);
    }

    private static int usedIdx(S s) {
        return (short) SHORT.getAcquire(s.memory.regionSegment(0), s.driver.usedAddr() + 2) & 0xffff;
    }
}
