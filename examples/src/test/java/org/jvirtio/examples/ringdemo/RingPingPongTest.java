package org.jvirtio.examples.ringdemo;

import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Two threads, one shared memfd mapping, eventfd kicks and calls: every request completes
 * exactly once and neither side ever sleeps through the other's work (a wait longer than the
 * stall bound fails the run instead of hanging it).
 */
class RingPingPongTest {
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void tenMillionRequestsWithEventIdx() throws Exception {
        RingPingPong.Result r = new RingPingPong(256, true, 10_000).run(10_000_000);
        assertEquals(10_000_000, r.requests());
        assertTrue(r.kicks() < r.requests(), "EVENT_IDX suppresses most kicks: " + r.kicks());
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void oneMillionRequestsWithNotificationFlags() throws Exception {
        RingPingPong.Result r = new RingPingPong(64, false, 10_000).run(1_000_000);
        assertEquals(1_000_000, r.requests());
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void oneMillionRequestsOnAPackedRingWithEventIdxAndWithFlags() throws Exception {
        RingPingPong.Result r = new RingPingPong(256, true, 10_000, true).run(1_000_000);
        assertEquals(1_000_000, r.requests());
        assertTrue(r.kicks() < r.requests(), "EVENT_IDX's off_wrap suppresses most kicks: " + r.kicks());
        r = new RingPingPong(64, false, 10_000, true).run(1_000_000);
        assertEquals(1_000_000, r.requests());
        // An odd size, which only the packed layout allows: positions and wrap counters meet unevenly.
        r = new RingPingPong(7, true, 10_000, true).run(300_000);
        assertEquals(300_000, r.requests());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void smallRingWrapsManyTimes() throws Exception {
        // size 2: every request wraps the slot index; 300k requests wrap the 16-bit indices 4 times
        RingPingPong.Result r = new RingPingPong(2, true, 10_000).run(300_000);
        assertEquals(300_000, r.requests());
    }
}
