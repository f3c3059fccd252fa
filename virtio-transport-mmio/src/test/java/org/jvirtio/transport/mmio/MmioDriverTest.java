package org.jvirtio.transport.mmio;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.concurrent.atomic.AtomicReference;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.testkit.EchoDevice;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Java MMIO driver against the transport, interrupt-driven through an irq eventfd: an echo
 * device, and two driver threads on two queues. (virtio-blk and virtio-rng run their own devices over MMIO.)
 */
class MmioDriverTest {
    static final long MEM = 8 << 20;

    GuestMemory mem;
    EventFd irq;

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(MEM);
        irq = EventFd.create(true);
    }

    @AfterEach
    void tearDown() {
        irq.close();
        mem.release();
    }

    @Test
    void echoWaitingOnInterruptsAndConfigUnderGeneration() throws Exception {
        EchoDevice dev = new EchoDevice(1).queueSizeLimit(64).configBytes(8);
        try (MmioTransport t = new MmioTransport(dev, mem, QueueHost.THREAD_PER_QUEUE, InterruptLine.eventFd(irq))) {
            MmioDriver d = MmioDriver.probe(t, mem, 0x100000, MEM - 0x100000, irq);
            assertEquals(0x3f, d.deviceId());
            assertEquals(VirtioFeatures.RING_FEATURES | VirtioFeatures.bit(3), d.negotiate(VirtioFeatures.RING_FEATURES | VirtioFeatures.bit(3)));
            MmioDriver.Queue q = d.setupQueue(0, 1024);
            assertEquals(64, q.ring().size(), "clamped to QueueNumMax");
            assertThrows(java.io.IOException.class, () -> d.setupQueue(0, 16), "already set up");
            assertThrows(java.io.IOException.class, () -> d.setupQueue(1, 16), "no such queue");
            d.driverOk();
            long in = d.allocate(4096, 4096);
            long out = d.allocate(4096, 4096);
            for (int i = 0; i < 100; i++) {
                byte[] data = ("request " + i).getBytes(StandardCharsets.US_ASCII);
                mem.write(in, MemorySegment.ofArray(data));
                assertTrue(q.ring().add(new long[] {in, out}, new int[] {data.length, data.length}, 2, 1, i) >= 0);
                q.publish();
                int[] len = {-1};
                assertEquals(1, q.awaitUsed((h, tok, l) -> len[0] = l, 10_000));
                assertEquals(data.length, len[0]);
                assertEquals((byte) ~data[0], (byte) mem.readU8(out));
            }
            d.writeConfig(0, new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
            assertArrayEquals(new byte[] {3, 4, 5, 6, 7}, d.readConfig(2, 5));
            dev.context.notifyConfigChange();
            assertEquals(MmioRegisters.INT_CONFIG, d.awaitInterrupt(1000) & MmioRegisters.INT_CONFIG);
            assertEquals(1, d.configChanges());
            d.deleteQueue(0);
            d.reset();
            assertEquals(0, d.status());
        }
    }

    @Test
    void probeRefusesWhatIsNotAVersion2Device() {
        MmioWindow empty = new MmioWindow() {
            @Override
            public int read(long offset, int width) {
                return offset == MmioRegisters.MAGIC_VALUE ? MmioRegisters.MAGIC : offset == MmioRegisters.VERSION_REG ? 1 : 0;
            }

            @Override
            public void write(long offset, int width, int value) {
            }
        };
        java.io.IOException e = assertThrows(java.io.IOException.class, () -> MmioDriver.probe(empty, mem, 0, MEM, null));
        assertTrue(e.getMessage().contains("version 1"), e.getMessage());
        MmioWindow nothing = new MmioWindow() {
            @Override
            public int read(long offset, int width) {
                return 0;
            }

            @Override
            public void write(long offset, int width, int value) {
            }
        };
        assertThrows(java.io.IOException.class, () -> MmioDriver.probe(nothing, mem, 0, MEM, null));
    }

    /**
     * Two driver threads, two device queues on two I/O threads, 1,000,000 requests: none lost,
     * none twice; on split rings and on packed ones.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "packed={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void twoThreadsTwoQueuesAMillionRequestsNoneLostOrDuplicated(boolean packed) throws Exception {
        EchoDevice dev = new EchoDevice(2).queueSizeLimit(64).configBytes(8);
        IoThreads host = new IoThreads(2, 0);
        try (MmioTransport t = new MmioTransport(dev, mem, host, InterruptLine.NONE)) {
            MmioDriver d = MmioDriver.probe(t, mem, 0x100000, MEM - 0x100000, null);
            long f = d.negotiate(VirtioFeatures.RING_FEATURES | (packed ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0));
            assertEquals(packed, VirtioFeatures.has(f, VirtioFeatures.RING_PACKED));
            MmioDriver.Queue[] qs = {d.setupQueue(0, 64), d.setupQueue(1, 64)};
            assertEquals(packed, qs[0].ring().packed());
            long[] bufs = {d.allocate(64 * 16, 4096), d.allocate(64 * 16, 4096)};
            d.driverOk();
            int perQueue = 500_000;
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread[] threads = new Thread[2];
            for (int k = 0; k < 2; k++) {
                int qi = k;
                threads[k] = Thread.ofPlatform().start(() -> {
                    try {
                        drive(qs[qi], bufs[qi], perQueue, qi);
                    } catch (Throwable e) {
                        failure.set(e);
                    }
                });
            }
            for (Thread th : threads) {
                th.join(120_000);
                assertFalse(th.isAlive(), "a driver thread did not finish");
            }
            if (failure.get() != null) {
                throw new AssertionError(failure.get());
            }
            assertEquals(2 * perQueue, dev.served.get());
        } finally {
            host.close();
        }
    }

    /** Keeps 32 requests in flight on {@code q}; each echoes its 8-byte token; every token comes back once. */
    private void drive(MmioDriver.Queue q, long bufs, int total, int qi) {
        org.jvirtio.ring.QueueDriver ring = q.ring();
        BitSet seen = new BitSet(total);
        int sent = 0;
        int done = 0;
        long deadline = System.nanoTime() + 100_000_000_000L;
        // slot i: request bytes at bufs + 16 i, answer at bufs + 16 i + 8
        int[] slotOf = new int[ring.size()];
        java.util.ArrayDeque<Integer> free = new java.util.ArrayDeque<>();
        for (int i = 0; i < 32; i++) {
            free.add(i);
        }
        long[] addrs = new long[2];
        int[] lens = {8, 8};
        while (done < total) {
            boolean added = false;
            while (sent < total && !free.isEmpty()) {
                int slot = free.poll();
                long token = ((long) qi << 32) | sent;
                mem.writeU64(bufs + 16L * slot, token);
                addrs[0] = bufs + 16L * slot;
                addrs[1] = bufs + 16L * slot + 8;
                int head = ring.add(addrs, lens, 2, 1, ((long) slot << 40) | token);
                assertTrue(head >= 0);
                sent++;
                added = true;
            }
            if (added) {
                q.publish();
            }
            int[] got = {0};
            ring.pollUsed((h, token, len) -> {
                int slot = (int) (token >>> 40);
                long tok = token & 0xff_ffff_ffffL;
                int n = (int) (tok & 0xffff_ffffL);
                assertEquals(8, len);
                assertEquals(~tok, mem.readU64(bufs + 16L * slot + 8), "echo of request " + n);
                assertFalse(seen.get(n), "request " + n + " answered twice");
                seen.set(n);
                free.add(slot);
                got[0]++;
            });
            done += got[0];
            if (got[0] == 0) {
                Thread.onSpinWait();
                assertTrue(System.nanoTime() < deadline, "queue " + qi + ": stuck at " + done + " of " + total);
            }
        }
        assertEquals(total, seen.cardinality());
    }
}
