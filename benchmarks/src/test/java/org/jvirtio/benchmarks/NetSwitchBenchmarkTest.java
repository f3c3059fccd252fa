package org.jvirtio.benchmarks;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link NetSwitchBenchmark} measures what it says: each call forwards 32 frames each way, every
 * one arrives intact in the other port's buffers (none dropped), and every chain of the four
 * rings is back with its driver at the end of the call (the tasks ran until nothing was left).
 * Several rounds, so the replayed rings wrap; on both ring layouts.
 */
class NetSwitchBenchmarkTest {
    @ParameterizedTest(name = "{0} bytes, packed={1}")
    @CsvSource({"64, false", "1500, false", "64, true", "1500, true"})
    void everyFrameIsForwardedIntactAndEveryChainComesBack(int frame, boolean packed) throws Exception {
        NetSwitchBenchmark b = new NetSwitchBenchmark();
        b.frame = frame;
        b.packed = packed;
        b.setUp();
        try {
            byte[] fromA = null; // b's first buffer after the first round
            int rounds = 3 * NetSwitchBenchmark.SIZE / NetSwitchBenchmark.BATCH;
            for (int r = 1; r <= rounds; r++) {
                b.forward32();
                assertEquals((long) r * NetSwitchBenchmark.BATCH, b.received(0), "round " + r);
                assertEquals((long) r * NetSwitchBenchmark.BATCH, b.received(1), "round " + r);
                assertEquals(0, b.inFlight(), "round " + r + ": chains still in flight");
                if (r == 1) {
                    fromA = b.receivedFrame(1, 0);
                    assertEquals(0x0a, fromA[11], "b's first buffer holds a frame from a");
                    assertEquals(0x0b, b.receivedFrame(0, 0)[11], "a's first buffer holds a frame from b");
                    for (int k = 14; k < frame; k++) {
                        assertEquals((byte) k, fromA[k], "byte " + k);
                    }
                }
            }
            assertArrayEquals(fromA, b.receivedFrame(1, NetSwitchBenchmark.SIZE - 1), "the last buffer as the first");
            assertEquals(0, b.dropped());
        } catch (Throwable t) {
            try {
                b.tearDown();
            } catch (RuntimeException e) {
                t.addSuppressed(e);
            }
            throw t;
        }
        b.tearDown();
    }
}
