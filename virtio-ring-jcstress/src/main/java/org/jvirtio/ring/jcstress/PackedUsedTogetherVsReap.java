package org.jvirtio.ring.jcstress;

import org.jvirtio.api.DescriptorChain;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Packed: chains returned together ({@code addUsedTogether}: a received frame spread over merged
 * buffers, whose first buffer's header says how many follow) are seen by the driver all or none.
 * The device writes the first used descriptor last (each with a release store of its flags), so a
 * driver that acquire-reads the first one used finds the later ones used too. Linux reads
 * num_buffers from the first buffer and then expects that many used descriptors: seeing the first
 * without the second would make it drop the frame as malformed.
 */
@JCStressTest
@Description("packed: chains returned together are seen all or none (the first used descriptor written last)")
@Outcome(id = "0, 0", expect = Expect.ACCEPTABLE, desc = "driver looked before the publish")
@Outcome(id = "2, 16", expect = Expect.ACCEPTABLE, desc = "driver saw both, with their lengths")
@Outcome(expect = Expect.FORBIDDEN, desc = "driver saw the first returned chain without the second")
public class PackedUsedTogetherVsReap {
    @State
    public static class S extends RingState {
        final DescriptorChain first;
        final DescriptorChain second;

        public S() {
            super(true, true);
            driver.add(new long[] {DATA}, new int[] {8}, 1, 0, 1);
            driver.add(new long[] {DATA + 0x10}, new int[] {8}, 1, 0, 2);
            driver.publish();
            first = device.pop();
            second = device.pop();
        }
    }

    @Actor
    public void device(S s) {
        s.device.addUsedTogether(new DescriptorChain[] {s.first, s.second}, new int[] {8, 8}, 2);
        s.device.publishUsed();
    }

    @Actor
    public void driver(S s, II_Result r) {
        s.driver.pollUsed((head, token, len) -> {
            r.r1++;
            r.r2 += len;
        });
    }
}
