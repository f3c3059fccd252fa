package org.jvirtio.ring.jcstress;

import org.jvirtio.api.DescriptorChain;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.JJ_Result;

/**
 * Packed: the device writes the response with plain stores, then the used descriptor (length, id
 * and flags) as one release store; the driver acquire-loads the flags and reaps. A driver that
 * sees the used descriptor must see its length and the response data.
 */
@JCStressTest
@Description("packed: used descriptor (release) vs driver reap (acquire): no element without its data")
@Outcome(id = "-1, -1", expect = Expect.ACCEPTABLE, desc = "driver looked before the publish")
@Outcome(id = "8, 42", expect = Expect.ACCEPTABLE, desc = "driver saw the element, its length and the data")
@Outcome(expect = Expect.FORBIDDEN, desc = "element seen without its length or data")
public class PackedUsedPublishVsReap {
    @State
    public static class S extends RingState {
        final DescriptorChain chain;

        public S() {
            super(true, true);
            driver.add(addrs, lens, 2, 1, 0);
            driver.publish();
            chain = device.pop();
        }
    }

    @Actor
    public void device(S s) {
        s.chain.writer().writeU64(42);
        s.device.addUsed(s.chain, 8);
        s.device.publishUsed();
    }

    @Actor
    public void driver(S s, JJ_Result r) {
        r.r1 = -1;
        r.r2 = -1;
        s.driver.pollUsed((head, token, len) -> {
            r.r1 = len;
            r.r2 = s.memory.readU64(RingState.DATA + 0x10);
        });
    }
}
