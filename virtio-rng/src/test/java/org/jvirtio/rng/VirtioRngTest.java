package org.jvirtio.rng;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.host.QueueEngine;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.vhostuser.DriverQueue;
import org.jvirtio.transport.vhostuser.DriverSession;
import org.jvirtio.transport.vhostuser.VhostUserProtocol;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/** virtio-rng through a real split ring in memfd memory and the framework's queue engine. */
class VirtioRngTest {
    static final int SIZE = 16;
    static final long BUF = 0x10000;

    @TempDir
    Path dir;
    GuestMemory mem;
    SplitQueueDriver driver;
    QueueEngine engine;

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(1 << 20);
    }

    @AfterEach
    void tearDown() {
        if (engine != null && engine.inFlight() == 0) {
            engine.close();
        }
        mem.release();
    }

    void start(VirtioRng rng) throws Exception {
        long f = FeatureNegotiation.offered(rng);
        driver = SplitQueueDriver.at(mem, 0x1000, SIZE, f, 0, 0);
        SplitQueue q = new SplitQueue(0, rng.maxChainLength());
        q.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, 0, 0);
        QueueBinding b = new QueueBinding(0, q, null, Interrupt.NONE);
        engine = new QueueEngine(b, rng.openQueue(b));
        engine.open();
    }

    /** Adds a chain of one readable and two writable buffers; returns nothing, token = {@code token}. */
    void request(long at, int first, int second, long token) {
        assertTrue(driver.add(new long[] {at, at + 16, at + 16 + first}, new int[] {16, first, second}, 3, 1, token) >= 0);
    }

    Map<Long, Integer> served() {
        Map<Long, Integer> used = new HashMap<>();
        driver.pollUsed((head, token, length) -> used.put(token, length));
        return used;
    }

    byte[] bytes(long at, int n) {
        byte[] b = new byte[n];
        mem.read(at, MemorySegment.ofArray(b));
        return b;
    }

    @Test
    void deviceIsWhatTheSpecSays() {
        VirtioRng rng = new VirtioRng(EntropySource.getrandom());
        assertEquals(4, rng.deviceId());
        assertEquals(0, rng.deviceFeatures());
        assertEquals(0, rng.configSize());
        assertEquals(1, rng.queueCount());
    }

    @Test
    void everyWritableBufferIsFilledFromGetrandomAndReadableOnesAreLeftAlone() throws Exception {
        start(new VirtioRng(EntropySource.getrandom()));
        mem.write(BUF, MemorySegment.ofArray(new byte[16]));
        request(BUF, 100, 28, 1);
        request(BUF + 0x1000, 4096, 1, 2);
        driver.publish();
        engine.serve();
        Map<Long, Integer> used = served();
        assertEquals(128, used.get(1L));
        assertEquals(4097, used.get(2L));
        assertArrayEquals(new byte[16], bytes(BUF, 16), "the readable buffer is not written");
        byte[] a = bytes(BUF + 16, 128);
        byte[] b = bytes(BUF + 0x1000 + 16, 128);
        assertFalse(java.util.Arrays.equals(a, b));
        assertFalse(java.util.Arrays.equals(a, new byte[128]));
    }

    @Test
    void aRequestGetsAtMost64KiB() throws Exception {
        start(new VirtioRng(EntropySource.getrandom()));
        request(BUF, 48 << 10, 48 << 10, 1);
        driver.publish();
        engine.serve();
        assertEquals(VirtioRng.MAX_PER_REQUEST, served().get(1L));
    }

    @Test
    void aFileSourceIsReadInOrderAndItsEndGivesFewerBytes() throws Exception {
        Path f = dir.resolve("pool");
        byte[] pool = new byte[200];
        for (int i = 0; i < pool.length; i++) {
            pool[i] = (byte) (i * 7 + 1);
        }
        Files.write(f, pool);
        try (EntropySource src = EntropySource.file(f)) {
            start(new VirtioRng(src));
            request(BUF, 100, 50, 1);
            request(BUF + 0x1000, 100, 50, 2);
            driver.publish();
            engine.serve();
            Map<Long, Integer> used = served();
            assertEquals(150, used.get(1L));
            assertEquals(50, used.get(2L), "the file ends after 200 bytes");
            assertArrayEquals(java.util.Arrays.copyOf(pool, 150), bytes(BUF + 16, 150));
            assertArrayEquals(java.util.Arrays.copyOfRange(pool, 150, 200), bytes(BUF + 0x1000 + 16, 50));
        }
        assertThrows(IOException.class, () -> EntropySource.file(dir.resolve("missing")));
    }

    /** 100 bytes per 300 ms: the first period's budget is shared out, the rest waits for the timer. */
    @Test
    void theRateLimitDelaysWhatDoesNotFitThePeriod() throws Exception {
        start(new VirtioRng(EntropySource.getrandom(), new RateLimit(100, 300)));
        long t0 = System.nanoTime();
        request(BUF, 60, 4, 1);
        request(BUF + 0x1000, 60, 4, 2);
        request(BUF + 0x2000, 60, 4, 3);
        driver.publish();
        engine.serve();
        Map<Long, Integer> used = served();
        assertEquals(64, used.get(1L));
        assertEquals(36, used.get(2L), "what is left of the budget");
        assertFalse(used.containsKey(3L), "the third waits for the next period");
        assertEquals(0, engine.inFlight(), "in the driver's ring, not held by the device");
        assertTrue(engine.resting());
        assertFalse(engine.serve(), "a kick meanwhile takes nothing");
        assertFalse(served().containsKey(3L));
        long due = engine.timerDeadline();
        assertTrue(due != 0, "the queue asked to be resumed when the period ends");
        assertTrue(due - t0 >= 250_000_000L && due - t0 <= 310_000_000L, "at the end of the period: " + (due - t0) + " ns");
        long wait = due - System.nanoTime();
        if (wait > 0) {
            Thread.sleep(wait / 1_000_000 + 1);
        }
        engine.timerExpired(); // as a host's timer does when the delay has passed
        assertEquals(64, served().get(3L));
        assertTrue(System.nanoTime() - t0 >= 250_000_000L, "waited for the period");
        assertEquals(0, engine.inFlight());
    }

    /**
     * Over vhost-user, a rate limit that has spent its budget leaves the waiting chains in the
     * driver's ring: a stop (QEMU's GET_VRING_BASE on a pause, a migration) answers at once with
     * the index after the chains served, and the next session serves the rest. Failed before:
     * the chains were held, so the stop waited out the drain limit (10 s) and then abandoned them,
     * reporting them taken although the driver never got them back.
     */
    @Test
    void aStopWhileTheRateLimitWaitsLeavesTheWaitingChainsInTheRing() throws Exception {
        Path sock = dir.resolve("rng.sock");
        try (var running = VhostUserRunner.start(VhostUserRunner.devices(), "rng", "--socket", sock.toString(), "--poll-us", "0",
                "--max-bytes", "100", "--period-ms", "600000");
             DriverSession s = DriverSession.connect(sock, 1 << 20)) {
            s.negotiate(~0L);
            DriverQueue q = s.queue(0, 8);
            long buf = s.allocate(8 * 64, 8);
            for (int i = 0; i < 3; i++) {
                assertTrue(q.ring().add(new long[] {buf + 64L * i}, new int[] {64}, 1, 0, i) >= 0);
            }
            q.publish();
            Map<Long, Integer> used = new HashMap<>();
            while (used.size() < 2) {
                assertTrue(q.awaitUsed((head, token, len) -> used.put(token, len), 5000) > 0, "no interrupt");
            }
            assertEquals(Map.of(0L, 64, 1L, 36), used, "the budget shared out");
            long t0 = System.nanoTime();
            // The rings are packed (negotiated): the base is avail 2 and used 2, each with wrap counter 1.
            assertEquals(PackedQueue.FRESH + 2 | (PackedQueue.FRESH + 2) << 16, s.frontend().getVringBase(0), "the third chain is still the driver's");
            assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "the stop did not wait for the period or the drain limit");
            assertEquals(0, q.awaitUsed((head, token, len) -> used.put(token, len), 100), "nothing came back for it");
        }
    }

    /** Over vhost-user, through the runner, driven with the driver kit as a guest would. */
    @Test
    void servedOverVhostUserThroughTheRunner() throws Exception {
        Path sock = dir.resolve("rng.sock");
        try (var running = VhostUserRunner.start(VhostUserRunner.devices(), "rng", "--socket", sock.toString(), "--poll-us", "0");
             DriverSession s = DriverSession.connect(sock, 1 << 20)) {
            long pf = s.frontend().getProtocolFeatures();
            assertEquals(0, pf & (1L << VhostUserProtocol.PROTOCOL_F_CONFIG), "no config space, no PROTOCOL_F_CONFIG");
            s.negotiate(~0L);
            DriverQueue q = s.queue(0, 8);
            long buf = s.allocate(8 * 512, 8);
            Map<Long, Integer> used = new HashMap<>();
            for (int round = 0; round < 100; round++) {
                for (int i = 0; i < 8; i++) {
                    assertTrue(q.ring().add(new long[] {buf + 512L * i}, new int[] {512}, 1, 0, round * 8L + i) >= 0);
                }
                q.publish();
                int got = 0;
                while (got < 8) {
                    int n = q.awaitUsed((head, token, len) -> used.put(token, len), 5000);
                    assertTrue(n > 0, "round " + round + ": no interrupt");
                    got += n;
                }
            }
            assertEquals(800, used.size());
            // --stats: the engine counts the requests, the device the bytes
            assertEquals("stats: q0 requests=800 bytes=" + (800L * 512) + " errors=0 in-flight=0", running.stats());
            used.values().forEach(l -> assertEquals(512, l));
            byte[] a = new byte[512];
            byte[] b = new byte[512];
            s.memory().read(buf, MemorySegment.ofArray(a));
            s.memory().read(buf + 512, MemorySegment.ofArray(b));
            assertFalse(java.util.Arrays.equals(a, b));
            assertFalse(java.util.Arrays.equals(a, new byte[512]));
        }
    }

    @Test
    void badLimitsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new RateLimit(-1, 10));
        assertThrows(IllegalArgumentException.class, () -> new RateLimit(10, 0));
        assertThrows(IllegalArgumentException.class, () -> new RateLimit(0, 10));
        assertTrue(RateLimit.NONE.isUnlimited());
    }

    /** The runner finds the rng subcommand through ServiceLoader, and refuses a bad source with one line. */
    @Test
    void theRunnerFindsRngAndRefusesABadSource() throws Exception {
        assertTrue(VhostUserRunner.devices().containsKey("rng"));
        var err = new java.io.ByteArrayOutputStream();
        var out = new java.io.PrintStream(new java.io.ByteArrayOutputStream(), true);
        assertEquals(2, VhostUserRunner.run(VhostUserRunner.devices(), new String[] {"rng", "--socket", dir.resolve("r.sock").toString(),
            "--source", dir.resolve("none").toString()}, out, new java.io.PrintStream(err, true)));
        assertEquals(1, err.toString().strip().lines().count(), err.toString());
        assertTrue(err.toString().contains("is not readable"), err.toString());
        assertFalse(Files.exists(dir.resolve("r.sock")));
        err.reset();
        assertEquals(2, VhostUserRunner.run(VhostUserRunner.devices(), new String[] {"rng", "--socket", dir.resolve("r.sock").toString(),
            "--max-bytes", "-5"}, out, new java.io.PrintStream(err, true)));
        assertEquals(1, err.toString().strip().lines().count(), err.toString());
        assertFalse(Files.exists(dir.resolve("r.sock")));
    }
}
