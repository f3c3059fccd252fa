package org.jvirtio.ring.jcstress;

import org.jvirtio.api.DescriptorChain;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.ZZ_Result;

/**
 * The lost interrupt race, packed (EVENT_IDX): the driver, polling with interrupts disabled,
 * re-enables them at its next used position and re-checks that descriptor; concurrently the device publishes a used element
 * and checks whether to interrupt. Both asleep would strand the completion.
 */
@JCStressTest
@Description("packed: driver enableInterrupts + re-check vs device publishUsed + interrupt check: never both asleep")
@Outcome(id = "true, true", expect = Expect.ACCEPTABLE, desc = "driver saw it and got an interrupt too")
@Outcome(id = "true, false", expect = Expect.ACCEPTABLE, desc = "driver saw it; no interrupt needed")
@Outcome(id = "false, true", expect = Expect.ACCEPTABLE, desc = "driver missed it but is interrupted")
@Outcome(id = "false, false", expect = Expect.FORBIDDEN, desc = "lost interrupt: both sides sleep")
public class PackedInterruptRace {
    @State
    public static class S extends RingState {
        final DescriptorChain first;
        final DescriptorChain second;

        public S() {
            super(true, true);
            driver.add(addrs, lens, 2, 1, 0);
            driver.add(addrs, lens, 2, 1, 1);
            driver.publish();
            first = device.pop();
            second = device.pop();
            // One completion reaped with interrupts on, so the device's "first check" is behind us.
            device.addUsed(first, 0);
            device.publishUsed();
            driver.pollUsed((h, t, l) -> { });
            driver.disableInterrupts();
        }
    }

    @Actor
    public void driver(S s, ZZ_Result r) {
        r.r1 = s.driver.enableInterrupts();
    }

    @Actor
    public void device(S s, ZZ_Result r) {
        s.device.addUsed(s.second, 0);
        r.r2 = s.device.publishUsed();
    }
}
