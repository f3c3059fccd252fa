package org.jvirtio.ring.jcstress;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.ZZ_Result;

/**
 * The lost kick race, packed (EVENT_IDX's off_wrap in the device's event suppression): the device, idle with notifications off,
 * re-enables them and re-checks the next descriptor's flags; concurrently the driver publishes a chain
 * and checks whether to kick. Both sides sleeping (no work seen, no kick sent) loses a request;
 * the full fences on both sides forbid it.
 */
@JCStressTest
@Description("enableNotifications + re-check vs publish + kick check (packed, EVENT_IDX): never both asleep")
@Outcome(id = "true, true", expect = Expect.ACCEPTABLE, desc = "device saw the chain and the driver kicked too")
@Outcome(id = "true, false", expect = Expect.ACCEPTABLE, desc = "device saw the chain; no kick needed")
@Outcome(id = "false, true", expect = Expect.ACCEPTABLE, desc = "device missed it but gets a kick")
@Outcome(id = "false, false", expect = Expect.FORBIDDEN, desc = "lost wake-up: both sides sleep")
public class PackedKickRaceEventIdx {
    @State
    public static class S extends RingState {
        public S() {
            super(true, true);
            device.disableNotifications();
        }
    }

    @Actor
    public void device(S s, ZZ_Result r) {
        r.r1 = s.device.enableNotifications();
    }

    @Actor
    public void driver(S s, ZZ_Result r) {
        s.driver.add(s.addrs, s.lens, 2, 1, 0);
        r.r2 = s.driver.publish();
    }
}
