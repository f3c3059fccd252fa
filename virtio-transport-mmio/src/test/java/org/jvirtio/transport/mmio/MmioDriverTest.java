package org.jvirtio.transport.mmio;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.concurrent.atomic.AtomicReference;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.RamBackend;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.rng.EntropySource;
import org.jvirtio.rng.VirtioRng;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Java MMIO driver against the transport, interrupt-driven through an irq eventfd: an echo
 * device, two driver threads on two queues, and the blk and rng devices, unchanged, over MMIO.
 */
class MmioDriverTest {
    static final long MEM = 8 << 20;

    GuestMemory mem;
    EventFd irq;

    @BeforeEach
    void setUp() throws Exception {
        MemoryMapping m = MemoryMapping.memfd("guest", MEM);
        mem = GuestMemory.of(GuestRegion.of(0, m));
        m.release();
        irq = EventFd.create(true);
    }

    @AfterEach
    void tearDown() {
        irq.close();
        mem.release();
    }

    @Test
    void echoWaitingOnInterruptsAndConfigUnderGeneration() throws Exception {
        EchoDevice dev = new EchoDevice(1);
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
                assertEquals(data.length, MmioBlk.awaitOne(d, q.ring()));
                assertEquals((byte) ~data[0], (byte) mem.readU8(out));
            }
            d.writeConfig(0, new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
            assertArrayEquals(new byte[] {3, 4, 5, 6, 7}, d.readConfig(2, 5));
            dev.ctx.notifyConfigChange();
            assertEquals(MmioTransport.INT_CONFIG, d.awaitInterrupt(1000) & MmioTransport.INT_CONFIG);
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
                return offset == MmioTransport.MAGIC_VALUE ? MmioTransport.MAGIC : offset == MmioTransport.VERSION_REG ? 1 : 0;
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

    /** Two driver threads, two device queues on two I/O threads, 1,000,000 requests: none lost, none twice. */
    @Test
    void twoThreadsTwoQueuesAMillionRequestsNoneLostOrDuplicated() throws Exception {
        EchoDevice dev = new EchoDevice(2);
        IoThreads host = new IoThreads(2, 0);
        try (MmioTransport t = new MmioTransport(dev, mem, host, InterruptLine.NONE)) {
            MmioDriver d = MmioDriver.probe(t, mem, 0x100000, MEM - 0x100000, null);
            d.negotiate(VirtioFeatures.RING_FEATURES);
            MmioDriver.Queue[] qs = {d.setupQueue(0, 64), d.setupQueue(1, 64)};
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
        SplitQueueDriver ring = q.ring();
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

    @Test
    void blkOnARamDiskOverMmio() throws Exception {
        VirtioBlkDevice blk = new VirtioBlkDevice(new RamBackend(1 << 20), new BlkOptions(1, 128, "mmio-disk", false));
        try (MmioTransport t = new MmioTransport(blk, mem, QueueHost.THREAD_PER_QUEUE, InterruptLine.eventFd(irq))) {
            MmioDriver d = MmioDriver.probe(t, mem, 0x100000, MEM - 0x100000, irq);
            assertEquals(VirtioBlk.DEVICE_ID, d.deviceId());
            d.negotiate(~0L);
            MmioDriver.Queue q = d.setupQueue(0, 128);
            d.driverOk();
            byte[] cap = d.readConfig(VirtioBlk.CFG_CAPACITY, 8);
            assertEquals(2048, java.nio.ByteBuffer.wrap(cap).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(), "capacity in sectors");
            long hdr = d.allocate(16, 16);
            long data = d.allocate(8192, 4096);
            long status = d.allocate(1, 1);
            byte[] pattern = new byte[8192];
            new java.util.Random(7).nextBytes(pattern);
            mem.write(data, MemorySegment.ofArray(pattern));
            assertEquals(VirtioBlk.S_OK, MmioBlk.request(mem, d, q, hdr, VirtioBlk.T_OUT, 100, data, 8192, status));
            assertEquals(VirtioBlk.S_OK, MmioBlk.request(mem, d, q, hdr, VirtioBlk.T_FLUSH, 0, data, 0, status));
            mem.write(data, MemorySegment.ofArray(new byte[8192]));
            assertEquals(VirtioBlk.S_OK, MmioBlk.request(mem, d, q, hdr, VirtioBlk.T_IN, 100, data, 8192, status));
            byte[] back = new byte[8192];
            mem.read(data, MemorySegment.ofArray(back));
            assertArrayEquals(pattern, back, "read back what was written");
            assertEquals(VirtioBlk.S_OK, MmioBlk.request(mem, d, q, hdr, VirtioBlk.T_GET_ID, 0, data, VirtioBlk.ID_BYTES, status));
            byte[] id = new byte[9];
            mem.read(data, MemorySegment.ofArray(id));
            assertEquals("mmio-disk", new String(id, StandardCharsets.US_ASCII));
            assertEquals(VirtioBlk.S_IOERR, MmioBlk.request(mem, d, q, hdr, VirtioBlk.T_IN, 2047, data, 4096, status), "past the end");
        } finally {
            blk.backend().close();
        }
    }

    /** A blk resize over MMIO: ConfigGeneration moves, a configuration interrupt arrives, the driver reads the new capacity. */
    @Test
    void blkResizeChangesTheGenerationAndInterrupts(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path img = dir.resolve("disk.img");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(1 << 20);
        }
        VirtioBlkDevice blk = new VirtioBlkDevice(org.jvirtio.blk.FileBackend.open(img, false, false), new BlkOptions(1, 128, "r", false));
        try (MmioTransport t = new MmioTransport(blk, mem, QueueHost.THREAD_PER_QUEUE, InterruptLine.eventFd(irq))) {
            MmioDriver d = MmioDriver.probe(t, mem, 0x100000, MEM - 0x100000, irq);
            d.negotiate(~0L);
            MmioDriver.Queue q = d.setupQueue(0, 128);
            int before = t.read(MmioTransport.CONFIG_GENERATION, 4);
            d.driverOk();
            long hdr = d.allocate(16, 16);
            long data = d.allocate(4096, 4096);
            long status = d.allocate(1, 1);
            assertEquals(VirtioBlk.S_OK, MmioBlk.request(mem, d, q, hdr, VirtioBlk.T_IN, 0, data, 4096, status));
            assertEquals(before, t.read(MmioTransport.CONFIG_GENERATION, 4), "no change at DRIVER_OK or from I/O");
            try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
                f.setLength(2 << 20);
            }
            assertEquals(4096, blk.refreshCapacity());
            assertNotEquals(before, t.read(MmioTransport.CONFIG_GENERATION, 4), "the generation moved");
            assertEquals(MmioTransport.INT_CONFIG, d.awaitInterrupt(2000) & MmioTransport.INT_CONFIG, "a configuration interrupt");
            byte[] cap = d.readConfig(VirtioBlk.CFG_CAPACITY, 8);
            assertEquals(4096, java.nio.ByteBuffer.wrap(cap).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong());
            int after = t.read(MmioTransport.CONFIG_GENERATION, 4);
            assertEquals(after, t.read(MmioTransport.CONFIG_GENERATION, 4), "and holds still");
        } finally {
            blk.backend().close();
        }
    }

    @Test
    void rngOverMmio() throws Exception {
        try (MmioTransport t = new MmioTransport(new VirtioRng(EntropySource.getrandom()), mem, QueueHost.THREAD_PER_QUEUE,
                InterruptLine.eventFd(irq))) {
            MmioDriver d = MmioDriver.probe(t, mem, 0x100000, MEM - 0x100000, irq);
            assertEquals(4, d.deviceId());
            d.negotiate(~0L);
            MmioDriver.Queue q = d.setupQueue(0, 64);
            d.driverOk();
            long buf = d.allocate(4096, 4096);
            assertTrue(q.ring().add(new long[] {buf}, new int[] {4096}, 1, 0, 1) >= 0);
            q.publish();
            assertEquals(4096, MmioBlk.awaitOne(d, q.ring()));
            long nonZero = 0;
            for (int i = 0; i < 4096; i += 8) {
                nonZero += mem.readU64(buf + i) != 0 ? 1 : 0;
            }
            assertTrue(nonZero > 500, "random bytes arrived");
        }
    }
}
