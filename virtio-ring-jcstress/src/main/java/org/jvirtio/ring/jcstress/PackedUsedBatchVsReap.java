package org.jvirtio.ring.jcstress;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Packed: chains returned one by one ({@code addUsed}) and then published are seen by the driver
 * all or none, as a split ring's used index publishes them: the used descriptors are kept until
 * {@code publishUsed} and written then, the oldest last (PackedUsedBatch), so the driver and the
 * device do not write the same cache lines request by request. Before, each was visible once
 * written, and the driver could take the first alone.
 */
@JCStressTest
@Description("packed: chains returned one by one are seen at the publish, all or none")
@Outcome(id = "0, 0", expect = Expect.ACCEPTABLE, desc = "driver looked before the publish")
@Outcome(id = "2, 16", expect = Expect.ACCEPTABLE, desc = "driver saw both, with their lengths")
@Outcome(expect = Expect.FORBIDDEN, desc = "driver saw part of what one publish returned")
public class PackedUsedBatchVsReap {
    /** Two chains popped, as for chains returned together. */
    @State
    public static class S extends PackedUsedTogetherVsReap.S {
    }

    @Actor
    public void device(S s) {
        s.device.addUsed(s.first, 8);
        s.device.addUsed(s.second, 8);
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
