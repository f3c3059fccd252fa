package org.jvirtio.ring.jcstress;

import org.jvirtio.api.DescriptorChain;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.J_Result;

/**
 * Packed: the driver fills a chain's descriptors and its data with plain stores, then
 * release-stores the first descriptor's flags; the device acquire-loads them and pops. A device
 * that sees the flags must see the chain and the data written before them.
 */
@JCStressTest
@Description("packed: first flags (release) vs device pop (acquire): no torn or stale chain")
@Outcome(id = "-1", expect = Expect.ACCEPTABLE, desc = "device looked before the publish: nothing available")
@Outcome(id = "4822678189205111", expect = Expect.ACCEPTABLE, desc = "device saw the whole chain and its data")
@Outcome(expect = Expect.FORBIDDEN, desc = "torn or stale chain: index seen before the entries behind it")
public class PackedAvailPublishVsPop {
    static final long MAGIC = 0x11223344556677L;

    @State
    public static class S extends RingState {
        public S() {
            super(true, true);
        }
    }

    @Actor
    public void driver(S s) {
        s.memory.writeU64(RingState.DATA, MAGIC);
        s.driver.add(s.addrs, s.lens, 2, 1, 0);
        s.driver.publish();
    }

    @Actor
    public void device(S s, J_Result r) {
        DescriptorChain c = s.device.pop();
        if (c == null) {
            r.r1 = s.device.isBroken() ? -2 : -1;
            return;
        }
        if (c.readableLength() != 8 || c.writableLength() != 8) {
            r.r1 = -3;
            return;
        }
        r.r1 = c.reader().readU64();
    }
}
