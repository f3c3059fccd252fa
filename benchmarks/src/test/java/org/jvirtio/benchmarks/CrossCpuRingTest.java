package org.jvirtio.benchmarks;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link CrossCpuRing} keeps working (a benchmark nobody runs rots): a short run of each layout,
 * with and without the inflight region, at depth 1 and 32, moves requests between the two
 * threads. It fails when used descriptors never reach the driver (no request completes: the
 * device's publish is what makes them visible), when the device chases the driver (more chains
 * per batch than are in flight), or when the ring breaks (the run throws).
 */
class CrossCpuRingTest {
    @ParameterizedTest(name = "packed={0} {1} depth {2} inflight={3}")
    @CsvSource({
        "false, direct3, 32, false", "true, direct3, 32, false", "true, direct1, 1, false",
        "false, indirect3, 32, true", "true, direct8, 32, true", "true, indirect3, 1, true",
    })
    void requestsGoRoundWithTheDriverAndTheDeviceOnTwoThreads(boolean packed, String shape, int depth, boolean inflight)
            throws Exception {
        CrossCpuRing.Run r = CrossCpuRing.run(packed, shape, depth, inflight, 50);
        assertTrue(Double.isFinite(r.nsPerRequest()) && r.nsPerRequest() < 50_000_000, "no request completed: " + r);
        // At most DEPTH chains per batch: the driver gets nothing back before the device's publish,
        // so the two sides take turns (a packed device whose used descriptors were visible as soon
        // as written chased the driver through the ring: hundreds of chains per batch).
        assertTrue(r.batch() >= 1 && r.batch() <= depth, "chains per device batch: " + r);
    }
}
