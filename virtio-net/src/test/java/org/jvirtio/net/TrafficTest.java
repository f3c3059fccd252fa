package org.jvirtio.net;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A port's frame and byte counters: each queue pair's transmit and receive queues count in a cell
 * of their own, the same cell across restarts of the queue (a new queue goes on from the old one's
 * counts), and the port reports the sums with what other threads counted.
 */
class TrafficTest {
    @Test
    void aPortSumsItsQueuesCellsAndKeepsThemAcrossRestarts() throws Exception {
        SwitchPort p = new NetSwitch("traffic-test").join("vm1");
        Traffic tx0 = p.txTraffic(0);
        tx0.add(3, 180);
        p.txTraffic(1).add(1, 1500);
        p.txFrames.incrementAndGet(); // a frame the device made itself (an announcement)
        p.txBytes.addAndGet(42);
        assertEquals(5, p.txFrames());
        assertEquals(180 + 1500 + 42, p.txBytes());
        assertSame(tx0, p.txTraffic(0), "a restarted pair counts on where it left off");
        Thread restarted = new Thread(() -> p.txTraffic(0).add(2, 128));
        restarted.start();
        restarted.join();
        assertEquals(7, p.txFrames());
        p.rxTraffic(3).add(10, 640);
        assertEquals(10, p.rxFrames());
        assertEquals(640, p.rxBytes());
        assertEquals(0, p.rxTraffic(0).frames(), "each direction its own cells");
        assertTrue(p.stats().contains("tx 7 frames " + (180 + 1500 + 42 + 128) + " bytes"), p.stats());
    }
}
