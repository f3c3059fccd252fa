package org.jvirtio.transport.mmio;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;
import java.time.Duration;

import org.jvirtio.testkit.EchoDevice;
import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.QueueHost;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.testkit.TestMemory;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.jvirtio.transport.mmio.MmioRegisters.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The register file, register by register, and hostile sequences: each asserts what the device
 * did, and that a correct initialization afterwards works (verified I/O through a real ring in
 * memfd memory).
 */
class MmioTransportTest {
    static final long MEM = 1 << 20;
    static final long RING = 0x1000;
    static final long BUF = 0x80000;
    /** What the tests' drivers take: everything offered but the packed layout (its own tests are PackedMmioTest). */
    static final long ALL_FEATURES = VirtioFeatures.RING_FEATURES | VirtioFeatures.bit(0) | VirtioFeatures.bit(3)
            | VirtioFeatures.bit(VirtioFeatures.RING_RESET);
    /** What the transport offers: also VIRTIO_F_RING_PACKED. */
    static final long OFFERED = ALL_FEATURES | VirtioFeatures.bit(VirtioFeatures.RING_PACKED);

    GuestMemory mem;
    EchoDevice device;
    MmioTransport t;
    final AtomicInteger raises = new AtomicInteger();
    volatile boolean level;
    final InterruptLine line = new InterruptLine() {
        @Override
        public void raise() {
            raises.incrementAndGet();
            level = true;
        }

        @Override
        public void lower() {
            level = false;
        }
    };

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(MEM);
        device = new EchoDevice(2).queueSizeLimit(64).configBytes(8);
        t = new MmioTransport(device, mem, QueueHost.THREAD_PER_QUEUE, line);
    }

    @AfterEach
    void tearDown() {
        t.close();
        mem.release();
    }

    int r(int off) {
        return t.read(off, 4);
    }

    void w(int off, int v) {
        t.write(off, 4, v);
    }

    /** Linux's order (drivers/virtio/virtio_mmio.c) up to FEATURES_OK; returns the status read back. */
    int negotiate(long features) {
        w(STATUS, 0);
        w(STATUS, DeviceStatus.ACKNOWLEDGE);
        w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        w(DRIVER_FEATURES_SEL, 0);
        w(DRIVER_FEATURES, (int) features);
        w(DRIVER_FEATURES_SEL, 1);
        w(DRIVER_FEATURES, (int) (features >>> 32));
        w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        return r(STATUS);
    }

    /** Sets up queue {@code index} at {@code base} with {@code size} entries, as vm_setup_vq does. */
    SplitQueueDriver queue(int index, long base, int size) {
        return (SplitQueueDriver) queue(index, base, size, VirtioFeatures.RING_FEATURES);
    }

    /** As {@link #queue(int, long, int)}, split or packed as {@code features} say. */
    org.jvirtio.ring.QueueDriver queue(int index, long base, int size, long features) {
        w(QUEUE_SEL, index);
        assertEquals(0, r(QUEUE_READY), "queue " + index + " not ready before setup");
        assertTrue(r(QUEUE_NUM_MAX) >= size);
        org.jvirtio.ring.QueueDriver d = org.jvirtio.ring.QueueDriver.at(mem, base, size, features, 0, 0);
        w(QUEUE_NUM, size);
        w(QUEUE_DESC_LOW, (int) d.descAddr());
        w(QUEUE_DESC_HIGH, (int) (d.descAddr() >>> 32));
        w(QUEUE_DRIVER_LOW, (int) d.availAddr());
        w(QUEUE_DRIVER_HIGH, 0);
        w(QUEUE_DEVICE_LOW, (int) d.usedAddr());
        w(QUEUE_DEVICE_HIGH, 0);
        w(QUEUE_READY, 1);
        return d;
    }

    void driverOk() {
        w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
    }

    /** One echo request on queue {@code index}, notified, answered and interrupted. */
    void echo(org.jvirtio.ring.QueueDriver d, int index, int n) throws Exception {
        byte[] data = new byte[n];
        for (int i = 0; i < n; i++) {
            data[i] = (byte) (i * 7 + index);
        }
        long in = BUF + 0x10000L * index;
        mem.write(in, MemorySegment.ofArray(data));
        assertTrue(d.add(new long[] {in, in + 0x8000}, new int[] {n, n}, 2, 1, 42) >= 0);
        d.enableInterrupts(); // as a driver does before it waits (EVENT_IDX: used_event moves on)
        d.publish();
        w(QUEUE_NOTIFY, index);
        int[] len = {-1};
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (d.pollUsed((h, tok, l) -> len[0] = l) == 0) {
            assertTrue(System.nanoTime() < deadline, "no answer on queue " + index);
            Thread.sleep(1);
        }
        assertEquals(n, len[0]);
        for (int i = 0; i < n; i++) {
            assertEquals((byte) ~data[i], (byte) mem.readU8(in + 0x8000 + i), "byte " + i);
        }
        // The queue's thread sets InterruptStatus, then raises the line: wait for both.
        deadline = System.nanoTime() + 5_000_000_000L;
        while ((r(INTERRUPT_STATUS) & INT_VRING) == 0 || !level) {
            assertTrue(System.nanoTime() < deadline, "no used-buffer interrupt with the line raised");
            Thread.sleep(1);
        }
        w(INTERRUPT_ACK, INT_VRING);
    }

    /** A correct initialization and verified I/O on both queues: what every hostile case ends with. */
    void initAndEcho() throws Exception {
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, negotiate(ALL_FEATURES));
        SplitQueueDriver d0 = queue(0, RING, 16);
        SplitQueueDriver d1 = queue(1, RING + 0x4000, 32);
        driverOk();
        assertEquals(0, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET);
        echo(d0, 0, 100);
        echo(d1, 1, 33);
        echo(d0, 0, 7);
    }

    /** One hostile step sequence; it asserts its own outcome. */
    @FunctionalInterface
    interface Hostile {
        void run(MmioTransportTest t) throws Exception;
    }

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> hostileSequences() {
        java.util.List<org.junit.jupiter.params.provider.Arguments> all = new java.util.ArrayList<>();
        java.util.function.BiConsumer<String, Hostile> add = (name, h) -> all.add(org.junit.jupiter.params.provider.Arguments.of(name, h));
        add.accept("notify before ready", t -> {
            t.negotiate(ALL_FEATURES);
            t.w(QUEUE_NOTIFY, 0);
            assertEquals(0, t.device.served.get());
        });
        add.accept("notify a queue the device does not have", t -> {
            t.negotiate(ALL_FEATURES);
            t.w(QUEUE_NOTIFY, 7);
            t.w(QUEUE_NOTIFY, 0xffff);
        });
        add.accept("notify with NOTIFICATION_DATA bits not negotiated", t -> {
            SplitQueueDriver d = t.readyQueue0();
            t.w(QUEUE_NOTIFY, 0x8001_0000);
            t.echo(d, 0, 4);
        });
        for (int num : new int[] {128, 12, 0, -1}) {
            add.accept("QueueNum " + num, t -> {
                t.negotiate(ALL_FEATURES);
                t.place(0, num, RING, RING + 0x400, RING + 0x800);
                t.w(QUEUE_READY, 1);
                assertEquals(0, t.r(QUEUE_READY));
                t.assertNeedsResetWithoutInterrupt();
            });
        }
        long[][] places = {{MEM + 0x1000, RING + 0x400, RING + 0x800}, {RING, MEM - 0x10, RING + 0x800}, {RING + 8, RING + 0x400, RING + 0x800},
            {RING, RING + 0x401, RING + 0x800}, {RING, RING + 0x400, RING + 0x802}, {1L << 40, RING + 0x400, RING + 0x800}};
        String[] what = {"descriptors outside memory", "avail ring across the end of memory", "misaligned descriptors", "misaligned avail ring",
            "misaligned used ring", "descriptors above 4 GiB, outside memory"};
        for (int k = 0; k < places.length; k++) {
            long[] p = places[k];
            add.accept("ready with " + what[k], t -> {
                t.negotiate(ALL_FEATURES);
                t.place(0, 16, p[0], p[1], p[2]);
                t.w(QUEUE_READY, 1);
                assertEquals(0, t.r(QUEUE_READY));
                t.assertNeedsResetWithoutInterrupt();
            });
        }
        add.accept("ready before FEATURES_OK with a bad ring, then DRIVER_OK", t -> {
            t.w(STATUS, DeviceStatus.ACKNOWLEDGE);
            t.place(0, 16, MEM, RING, RING);
            t.w(QUEUE_READY, 1);
            t.assertNeedsResetWithoutInterrupt();
        });
        add.accept("QueueReady 2 and ready on a missing queue", t -> {
            t.negotiate(ALL_FEATURES);
            t.w(QUEUE_SEL, 5);
            t.w(QUEUE_READY, 1);
            t.w(QUEUE_SEL, 0);
            t.w(QUEUE_READY, 2);
            assertEquals(0, t.r(QUEUE_READY));
        });
        add.accept("queue registers rewritten while ready", t -> {
            SplitQueueDriver d = t.readyQueue0();
            t.place(0, 8, 0x50000, 0x50000, 0x50000);
            t.echo(d, 0, 9);
        });
        add.accept("feature words rewritten after FEATURES_OK", t -> {
            t.negotiate(VirtioFeatures.RING_FEATURES);
            t.w(DRIVER_FEATURES_SEL, 0);
            t.w(DRIVER_FEATURES, -1);
            t.w(DRIVER_FEATURES_SEL, 1);
            t.w(DRIVER_FEATURES, -1);
            SplitQueueDriver d = t.queue(0, RING, 16);
            t.driverOk();
            assertEquals(VirtioFeatures.RING_FEATURES, t.device.context.negotiatedFeatures());
            t.echo(d, 0, 3);
        });
        add.accept("features without VERSION_1", t -> assertEquals(0, t.negotiate(VirtioFeatures.bit(0)) & DeviceStatus.FEATURES_OK));
        add.accept("features the device does not offer", t -> assertEquals(0, t.negotiate(ALL_FEATURES | VirtioFeatures.bit(20)) & DeviceStatus.FEATURES_OK));
        add.accept("DRIVER_OK after a refused FEATURES_OK", t -> {
            t.negotiate(VirtioFeatures.bit(0));
            t.w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
            assertEquals(0, t.r(STATUS) & DeviceStatus.DRIVER_OK);
            assertEquals(0, t.device.activations.get());
        });
        add.accept("writes to every read-only register", t -> {
            for (int off : new int[] {MAGIC_VALUE, VERSION_REG, DEVICE_ID, VENDOR_ID, DEVICE_FEATURES, QUEUE_NUM_MAX, INTERRUPT_STATUS,
                SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH, CONFIG_GENERATION}) {
                t.w(off, 0x1234);
            }
            assertEquals(MAGIC, t.r(MAGIC_VALUE));
            assertEquals(VERSION, t.r(VERSION_REG));
        });
        add.accept("reads of every write-only register", t -> {
            for (int off : new int[] {DEVICE_FEATURES_SEL, DRIVER_FEATURES, DRIVER_FEATURES_SEL, QUEUE_SEL, QUEUE_NUM, QUEUE_NOTIFY,
                INTERRUPT_ACK, QUEUE_DESC_LOW, QUEUE_DESC_HIGH, QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, SHM_SEL}) {
                assertEquals(0, t.r(off), "register 0x" + Integer.toHexString(off));
            }
        });
        add.accept("every invalid width", t -> {
            for (int width : new int[] {0, 1, 2, 3, 5, 8, -1, Integer.MAX_VALUE}) {
                assertEquals(0, t.t.read(MAGIC_VALUE, width));
                t.t.write(STATUS, width, DeviceStatus.ACKNOWLEDGE);
            }
            assertEquals(0, t.r(STATUS));
        });
        add.accept("misaligned, unknown and out-of-window offsets", t -> {
            for (long off : new long[] {1, 2, 3, 0x71, 0x018, 0x0f8, 0x0c4, WINDOW, WINDOW + 4, -4, Long.MIN_VALUE, Long.MAX_VALUE}) {
                assertEquals(0, t.t.read(off, 4), "offset " + off);
                t.t.write(off, 4, DeviceStatus.ACKNOWLEDGE);
            }
            assertEquals(0, t.r(STATUS));
        });
        add.accept("config space past its end, misaligned, 8 bytes", t -> {
            assertEquals(0, t.t.read(CONFIG + 8, 1));
            assertEquals(0, t.t.read(CONFIG + 6, 4));
            assertEquals(0, t.t.read(CONFIG + 1, 2));
            assertEquals(0, t.t.read(CONFIG, 8));
            t.t.write(CONFIG + 7, 2, 0xffff);
            t.t.write(CONFIG + 0xfc, 4, 1);
            assertEquals(0, t.t.read(CONFIG + 4, 4));
        });
        add.accept("status regressions", t -> {
            t.negotiate(ALL_FEATURES);
            t.w(STATUS, DeviceStatus.ACKNOWLEDGE);
            assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, t.r(STATUS));
        });
        add.accept("DEVICE_NEEDS_RESET and unknown bits from the driver", t -> {
            t.w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DEVICE_NEEDS_RESET);
            t.w(STATUS, DeviceStatus.ACKNOWLEDGE | 0x100);
            t.w(STATUS, DeviceStatus.ACKNOWLEDGE | 0x10);
            assertEquals(0, t.r(STATUS));
        });
        add.accept("DRIVER_OK first", t -> {
            t.w(STATUS, DeviceStatus.DRIVER_OK);
            assertEquals(0, t.r(STATUS));
        });
        add.accept("interrupt acknowledged twice", t -> {
            SplitQueueDriver d = t.readyQueue0();
            t.echo(d, 0, 2); // acknowledges once
            t.w(INTERRUPT_ACK, INT_VRING);
            t.w(INTERRUPT_ACK, -1);
            assertEquals(0, t.r(INTERRUPT_STATUS));
        });
        add.accept("interrupt never acknowledged", t -> {
            SplitQueueDriver d = t.readyQueue0();
            assertTrue(d.add(new long[] {BUF}, new int[] {4}, 1, 1, 1) >= 0);
            d.publish();
            t.w(QUEUE_NOTIFY, 0);
            long deadline = System.nanoTime() + 5_000_000_000L;
            while ((t.r(INTERRUPT_STATUS) & INT_VRING) == 0) {
                assertTrue(System.nanoTime() < deadline);
                Thread.sleep(1);
            }
            assertTrue(t.level, "the line stays high");
        });
        add.accept("reset during I/O", t -> {
            SplitQueueDriver d = t.readyQueue0();
            for (int i = 0; i < 8; i++) {
                assertTrue(d.add(new long[] {BUF + 64L * i, BUF + 0x8000 + 64L * i}, new int[] {8, 8}, 2, 1, i) >= 0);
            }
            d.publish();
            t.w(QUEUE_NOTIFY, 0);
            t.w(STATUS, 0);
            assertEquals(0, t.r(STATUS));
        });
        add.accept("QueueReset without RING_RESET", t -> {
            t.negotiate(VirtioFeatures.RING_FEATURES);
            SplitQueueDriver d = t.queue(0, RING, 16);
            t.driverOk();
            t.w(QUEUE_RESET, 1);
            assertEquals(1, t.r(QUEUE_READY));
            t.echo(d, 0, 3);
        });
        add.accept("a ring broken at run time", t -> {
            SplitQueueDriver d = t.readyQueue0();
            t.mem.writeU16(d.availAddr() + 2, 1000);
            t.w(QUEUE_NOTIFY, 0);
            // The queue's thread sets DEVICE_NEEDS_RESET, then raises the interrupt: wait for the
            // line too (a driver may read the status before the interrupt arrives).
            Await.await(() -> (t.r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET) != 0 && t.level, Duration.ofSeconds(5), () -> "no DEVICE_NEEDS_RESET with the line raised within 5 s");
            t.assertNeedsResetWithConfigInterrupt();
        });
        return all.stream();
    }

    /**
     * Issue 11: every hostile sequence leaves the window answering, with the outcome its case
     * asserts, and the next correct initialization (reset, features, two queues, DRIVER_OK,
     * verified I/O) works.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.MethodSource("hostileSequences")
    void aHostileSequenceThenACorrectInitialization(String name, Hostile h) throws Exception {
        h.run(this);
        assertEquals(MAGIC, r(MAGIC_VALUE), name);
        initAndEcho();
        initAndEchoPacked(); // and a driver that takes packed rings next, after the same sequence
    }

    /** {@link #initAndEcho} with packed rings: a reset, features with RING_PACKED, two queues of 12 and 64, verified I/O. */
    void initAndEchoPacked() throws Exception {
        long packed = ALL_FEATURES | VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, negotiate(packed));
        org.jvirtio.ring.QueueDriver d0 = queue(0, RING + 0x8000, 12, packed);
        org.jvirtio.ring.QueueDriver d1 = queue(1, RING + 0xC000, 64, packed);
        assertTrue(d0.packed() && d1.packed());
        driverOk();
        assertEquals(0, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET);
        echo(d0, 0, 100);
        echo(d1, 1, 33);
        echo(d0, 0, 7);
    }

    /** Programs queue {@code index}'s registers (not ready). */
    void place(int index, int num, long desc, long avail, long used) {
        w(QUEUE_SEL, index);
        w(QUEUE_NUM, num);
        w(QUEUE_DESC_LOW, (int) desc);
        w(QUEUE_DESC_HIGH, (int) (desc >>> 32));
        w(QUEUE_DRIVER_LOW, (int) avail);
        w(QUEUE_DRIVER_HIGH, (int) (avail >>> 32));
        w(QUEUE_DEVICE_LOW, (int) used);
        w(QUEUE_DEVICE_HIGH, (int) (used >>> 32));
    }

    /** Features, queue 0 ready, DRIVER_OK. */
    SplitQueueDriver readyQueue0() {
        negotiate(ALL_FEATURES);
        SplitQueueDriver d = queue(0, RING, 16);
        driverOk();
        return d;
    }

    void assertNeedsResetWithConfigInterrupt() {
        assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET, "DEVICE_NEEDS_RESET");
        assertEquals(INT_CONFIG, r(INTERRUPT_STATUS) & INT_CONFIG, "with a configuration interrupt");
        assertTrue(level, "the line is high");
    }

    /** A queue refused before DRIVER_OK: NEEDS_RESET, but no notification yet (VIRTIO 1.3, 2.1.2). */
    void assertNeedsResetWithoutInterrupt() {
        assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET, "DEVICE_NEEDS_RESET");
        assertEquals(0, r(INTERRUPT_STATUS), "no interrupt before DRIVER_OK");
        assertEquals(0, raises.get(), "the line was never raised");
    }

    /**
     * What a device offers only where the front-end serves its control queue (a network device's
     * GUEST_ANNOUNCE, over vhost-user) is not offered here: the driver would have to find a
     * control queue the device does not have.
     */
    @Test
    void featuresThatNeedAControlQueueTheFrontEndServesAreNotOffered() throws Exception {
        EchoDevice d = new EchoDevice(1).frontEndControlQueueFeatures(VirtioFeatures.bit(21) | VirtioFeatures.bit(22));
        MmioTransport m = new MmioTransport(d, mem, QueueHost.THREAD_PER_QUEUE, new InterruptLine() {
            @Override
            public void raise() {
            }

            @Override
            public void lower() {
            }
        });
        try {
            m.write(DEVICE_FEATURES_SEL, 4, 0);
            assertEquals((int) OFFERED, m.read(DEVICE_FEATURES, 4));
            m.write(DRIVER_FEATURES_SEL, 4, 0);
            m.write(DRIVER_FEATURES, 4, (int) (OFFERED | VirtioFeatures.bit(21)));
            m.write(DRIVER_FEATURES_SEL, 4, 1);
            m.write(DRIVER_FEATURES, 4, (int) (OFFERED >>> 32));
            m.write(STATUS, 4, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
            assertEquals(0, m.read(STATUS, 4) & DeviceStatus.FEATURES_OK, "a driver that takes bit 21 anyway is refused");
        } finally {
            m.close();
        }
    }

    @Test
    void probeRegistersReadAsTheSpecSays() {
        assertEquals(0x74726976, r(MAGIC_VALUE));
        assertEquals(2, r(VERSION_REG));
        assertEquals(0x3f, r(DEVICE_ID));
        assertEquals(VENDOR, r(VENDOR_ID));
        w(DEVICE_FEATURES_SEL, 0);
        assertEquals((int) OFFERED, r(DEVICE_FEATURES));
        w(DEVICE_FEATURES_SEL, 1);
        assertEquals((int) (OFFERED >>> 32), r(DEVICE_FEATURES));
        w(DEVICE_FEATURES_SEL, 2);
        assertEquals(0, r(DEVICE_FEATURES), "feature words past the second are 0");
        w(QUEUE_SEL, 1);
        assertEquals(64, r(QUEUE_NUM_MAX));
        w(QUEUE_SEL, 2);
        assertEquals(0, r(QUEUE_NUM_MAX), "a queue the device does not have");
        assertEquals(0, r(QUEUE_READY));
        assertEquals(0, r(INTERRUPT_STATUS));
        assertEquals(0, r(STATUS));
        w(SHM_SEL, 0);
        assertEquals(-1, r(SHM_LEN_LOW), "no shared memory regions: length reads all ones");
        assertEquals(-1, r(SHM_LEN_HIGH));
        assertEquals(-1, r(SHM_BASE_LOW));
        assertEquals(-1, r(SHM_BASE_HIGH));
        assertEquals(0, r(QUEUE_RESET));
        assertEquals(r(CONFIG_GENERATION), r(CONFIG_GENERATION));
    }

    @Test
    void fullInitializationAndIoOnTwoQueues() throws Exception {
        initAndEcho();
        assertEquals(1, device.activations.get());
        assertEquals(ALL_FEATURES, device.context.negotiatedFeatures());
    }

    @Test
    void featuresOkIsRefusedWhenTheDriversFeaturesAreUnacceptable() throws Exception {
        int s = negotiate(VirtioFeatures.bit(0)); // no VERSION_1: a legacy driver
        assertEquals(0, s & DeviceStatus.FEATURES_OK, "FEATURES_OK reads back clear");
        s = negotiate(ALL_FEATURES | VirtioFeatures.bit(20)); // a bit the device does not offer
        assertEquals(0, s & DeviceStatus.FEATURES_OK);
        initAndEcho();
    }

    @Test
    void featureChangesAfterFeaturesOkAreIgnored() throws Exception {
        negotiate(VirtioFeatures.RING_FEATURES);
        w(DRIVER_FEATURES_SEL, 0);
        w(DRIVER_FEATURES, -1);
        SplitQueueDriver d = queue(0, RING, 16);
        driverOk();
        assertEquals(VirtioFeatures.RING_FEATURES, device.context.negotiatedFeatures());
        echo(d, 0, 5);
        initAndEcho();
    }

    @Test
    void interruptStatusStaysUntilAcknowledgedAndAnAckClearsOnlyItsBits() throws Exception {
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, negotiate(ALL_FEATURES));
        SplitQueueDriver d = queue(0, RING, 16);
        driverOk();
        assertTrue(d.add(new long[] {BUF}, new int[] {4}, 1, 1, 1) >= 0);
        d.publish();
        w(QUEUE_NOTIFY, 0);
        Await.await(() -> (r(INTERRUPT_STATUS) & INT_VRING) != 0, Duration.ofSeconds(5), () -> "no interrupt");
        Thread.sleep(20);
        assertEquals(INT_VRING, r(INTERRUPT_STATUS), "still set: nobody acknowledged");
        // A configuration change arrives between the driver's read and its ACK of the vring bit.
        device.context.notifyConfigChange();
        w(INTERRUPT_ACK, INT_VRING);
        assertEquals(INT_CONFIG, r(INTERRUPT_STATUS), "the config bit stays pending");
        assertTrue(level, "and keeps the line raised");
        w(INTERRUPT_ACK, INT_VRING);
        assertEquals(INT_CONFIG, r(INTERRUPT_STATUS), "acknowledging a clear bit twice changes nothing");
        w(INTERRUPT_ACK, INT_CONFIG | 0xf0);
        assertEquals(0, r(INTERRUPT_STATUS));
        assertFalse(level, "the line goes low with the last bit");
        initAndEcho();
    }

    @Test
    void configSpaceAndGeneration() throws Exception {
        int g = r(CONFIG_GENERATION);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, negotiate(ALL_FEATURES));
        queue(0, RING, 16);
        driverOk();
        assertEquals(g, r(CONFIG_GENERATION), "no change at DRIVER_OK");
        t.write(CONFIG + 2, 2, 0xbeef);
        assertEquals(0xbeef, t.read(CONFIG + 2, 2));
        assertEquals(0xef, t.read(CONFIG + 2, 1));
        assertEquals(0xbeef0000, t.read(CONFIG, 4));
        assertNotEquals(g, r(CONFIG_GENERATION), "a config write changes the generation");
        int g2 = r(CONFIG_GENERATION);
        device.context.notifyConfigChange(); // a resize, say
        assertNotEquals(g2, r(CONFIG_GENERATION));
        assertEquals(INT_CONFIG, r(INTERRUPT_STATUS) & INT_CONFIG, "with a configuration interrupt");
        // Past the end, misaligned, 8 bytes: refused.
        assertEquals(0, t.read(CONFIG + 8, 1));
        assertEquals(0, t.read(CONFIG + 6, 4));
        assertEquals(0, t.read(CONFIG + 1, 2));
        assertEquals(0, t.read(CONFIG, 8));
        t.write(CONFIG + 7, 2, 0xffff);
        assertEquals(0, t.read(CONFIG + 6, 1));
        initAndEcho();
    }

    @Test
    void writingZeroToStatusResetsEverything() throws Exception {
        initAndEcho();
        device.context.notifyConfigChange();
        assertNotEquals(0, r(INTERRUPT_STATUS));
        w(STATUS, 0);
        assertEquals(0, r(STATUS));
        assertEquals(0, r(INTERRUPT_STATUS), "InterruptStatus cleared");
        assertFalse(level);
        for (int i = 0; i < 2; i++) {
            w(QUEUE_SEL, i);
            assertEquals(0, r(QUEUE_READY), "QueueReady cleared on queue " + i);
        }
        assertEquals(1, device.resets.get());
        initAndEcho();
        assertEquals(2, device.activations.get());
    }

    @Test
    void queueRegistersAreWritableOnlyWhileTheQueueIsNotReady() throws Exception {
        negotiate(ALL_FEATURES);
        SplitQueueDriver d = queue(0, RING, 16);
        w(QUEUE_NUM, 8);
        w(QUEUE_DESC_LOW, 0x50000);
        w(QUEUE_DRIVER_LOW, 0x50000);
        w(QUEUE_DEVICE_LOW, 0x50000);
        // Made ready again from its registers: had the writes above been taken, the ring would now
        // be 8 entries at 0x50000, and the driver's ring below would never be answered.
        w(QUEUE_READY, 0);
        w(QUEUE_READY, 1);
        assertEquals(1, r(QUEUE_READY));
        driverOk();
        echo(d, 0, 9); // still the ring it was given
        initAndEcho();
    }

    @Test
    void hostileQueueSetups() throws Exception {
        negotiate(ALL_FEATURES);
        // Notify before ready, and for queues that do not exist.
        w(QUEUE_NOTIFY, 0);
        w(QUEUE_NOTIFY, 7);
        w(QUEUE_NOTIFY, 0xffff_0001);
        // QueueNum above the maximum, and not a power of two.
        for (int num : new int[] {128, 12, 0}) {
            w(QUEUE_SEL, 0);
            w(QUEUE_NUM, num);
            w(QUEUE_DESC_LOW, (int) RING);
            w(QUEUE_DRIVER_LOW, (int) RING + 0x400);
            w(QUEUE_DEVICE_LOW, (int) RING + 0x800);
            w(QUEUE_READY, 1);
            assertEquals(0, r(QUEUE_READY), "size " + num + " refused");
            assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET);
            // VIRTIO 1.3, 2.1.2: no notification before DRIVER_OK.
            assertEquals(0, r(INTERRUPT_STATUS), "no interrupt before DRIVER_OK");
            assertEquals(0, raises.get(), "the line was never raised before DRIVER_OK");
        }
        // Rings outside memory, across its end, and misaligned.
        long[][] places = {{MEM + 0x1000, RING + 0x400, RING + 0x800}, {RING, MEM - 0x10, RING + 0x800},
            {RING + 8, RING + 0x400, RING + 0x800}, {RING, RING + 0x401, RING + 0x800}, {RING, RING + 0x400, RING + 0x802},
            {1L << 40, RING + 0x400, RING + 0x800}};
        for (long[] p : places) {
            w(QUEUE_SEL, 0);
            w(QUEUE_NUM, 16);
            w(QUEUE_DESC_LOW, (int) p[0]);
            w(QUEUE_DESC_HIGH, (int) (p[0] >>> 32));
            w(QUEUE_DRIVER_LOW, (int) p[1]);
            w(QUEUE_DEVICE_LOW, (int) p[2]);
            w(QUEUE_READY, 1);
            assertEquals(0, r(QUEUE_READY), "ring at " + java.util.Arrays.toString(p) + " refused");
        }
        w(QUEUE_DESC_HIGH, 0);
        // Ready on a queue that does not exist; QueueReady with a value other than 0 or 1.
        w(QUEUE_SEL, 5);
        w(QUEUE_READY, 1);
        w(QUEUE_SEL, 0);
        w(QUEUE_READY, 2);
        assertEquals(0, r(QUEUE_READY));
        assertEquals(0, raises.get(), "the line was never raised before DRIVER_OK");
        driverOk(); // with NEEDS_RESET set: the driver resets next
        assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET);
        // The pending NEEDS_RESET is announced once DRIVER_OK allows notifications.
        assertNeedsResetWithConfigInterrupt();
        w(INTERRUPT_ACK, INT_CONFIG);
        initAndEcho();
    }

    /**
     * Packed rings over MMIO (issue 25): VIRTIO_F_RING_PACKED offered and taken, the same queue
     * registers naming the descriptor ring, driver area and device area; any size up to
     * QueueNumMax (not only powers of two); sizes beyond it or 0, and misaligned or outside
     * areas, refused as for split (queue not ready, DEVICE_NEEDS_RESET); laps around both rings.
     */
    @Test
    void packedRingsOverMmio() throws Exception {
        long packed = ALL_FEATURES | VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, negotiate(packed));
        for (int num : new int[] {0, 65}) {
            w(QUEUE_SEL, 0);
            w(QUEUE_NUM, num);
            w(QUEUE_DESC_LOW, (int) RING);
            w(QUEUE_DRIVER_LOW, (int) RING + 0x400);
            w(QUEUE_DEVICE_LOW, (int) RING + 0x800);
            w(QUEUE_READY, 1);
            assertEquals(0, r(QUEUE_READY), "packed size " + num + " refused");
        }
        long[][] places = {{RING + 8, RING + 0x400, RING + 0x800}, {RING, RING + 0x402, RING + 0x800}, {RING, RING + 0x400, RING + 0x801},
            {MEM - 0x10, RING + 0x400, RING + 0x800}};
        for (long[] p : places) {
            w(QUEUE_SEL, 0);
            w(QUEUE_NUM, 12);
            w(QUEUE_DESC_LOW, (int) p[0]);
            w(QUEUE_DRIVER_LOW, (int) p[1]);
            w(QUEUE_DEVICE_LOW, (int) p[2]);
            w(QUEUE_READY, 1);
            assertEquals(0, r(QUEUE_READY), "packed ring at " + java.util.Arrays.toString(p) + " refused");
        }
        assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET);
        // The driver resets and starts again, correctly this time: sizes 12 and 64.
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, negotiate(packed));
        org.jvirtio.ring.QueueDriver d0 = queue(0, RING, 12, packed);
        org.jvirtio.ring.QueueDriver d1 = queue(1, RING + 0x4000, 64, packed);
        assertTrue(d0.packed() && d1.packed());
        driverOk();
        assertEquals(0, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET);
        for (int i = 0; i < 40; i++) { // each echo is two descriptors: several laps of the 12-entry ring
            echo(d0, 0, 1 + i);
            echo(d1, 1, 100 + i);
        }
        initAndEcho(); // and split again after a reset
    }

    @Test
    void aBrokenRingAtRunTimeSetsNeedsResetWithAConfigInterrupt() throws Exception {
        negotiate(ALL_FEATURES);
        SplitQueueDriver d = queue(0, RING, 16);
        driverOk();
        mem.writeU16(d.availAddr() + 2, 1000); // avail->idx far ahead
        w(QUEUE_NOTIFY, 0);
        Await.await(() -> (r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET) != 0, Duration.ofSeconds(5), () -> "no DEVICE_NEEDS_RESET");
        assertEquals(INT_CONFIG, r(INTERRUPT_STATUS) & INT_CONFIG);
        assertTrue(level);
        initAndEcho();
    }

    /**
     * A queue that cannot start at DRIVER_OK (its handler's open fails) or at a QueueReady after
     * it, and a device that cannot activate, set DEVICE_NEEDS_RESET with a configuration
     * interrupt, on either host; after the driver's reset the device works. Before, the failure
     * was only logged: DRIVER_OK stood and nobody served the queue.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"thread per queue", "I/O threads"})
    void aQueueOrDeviceThatCannotStartSetsNeedsReset(String host) throws Exception {
        org.jvirtio.host.IoThreads io = host.startsWith("I/O") ? new org.jvirtio.host.IoThreads(1, 0) : null;
        if (io != null) {
            t.close();
            t = new MmioTransport(device, mem, io, line);
        }
        try {
            device.failOpen = true;
            negotiate(ALL_FEATURES);
            queue(0, RING, 16);
            assertEquals(0, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET, "nothing failed before DRIVER_OK");
            driverOk();
            assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET, "queue 0 did not start");
            assertEquals(INT_CONFIG, r(INTERRUPT_STATUS) & INT_CONFIG);
            assertTrue(level);
            w(INTERRUPT_ACK, INT_CONFIG);
            queue(1, RING + 0x4000, 32); // after DRIVER_OK: started at QueueReady, and fails there
            assertEquals(INT_CONFIG, r(INTERRUPT_STATUS) & INT_CONFIG, "queue 1's failure is announced too");
            assertEquals(1, device.activations.get(), "the device itself did activate");
            device.failOpen = false;
            initAndEcho();

            device.failActivate = true;
            negotiate(ALL_FEATURES);
            queue(0, RING, 16);
            driverOk();
            assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET, "the device did not activate");
            assertEquals(INT_CONFIG, r(INTERRUPT_STATUS) & INT_CONFIG);
            w(INTERRUPT_ACK, INT_CONFIG);
            int starts = device.starts.get();
            queue(1, RING + 0x4000, 32);
            assertEquals(starts, device.starts.get(), "no queue starts on a device that did not activate");
            device.failActivate = false;
            initAndEcho();
            assertEquals(starts + 2, device.starts.get());
        } finally {
            if (io != null) {
                t.close();
                io.close();
            }
        }
    }

    @Test
    void badAccessesAreIgnoredAndNothingThrows() throws Exception {
        negotiate(ALL_FEATURES);
        // Writes to read-only registers.
        for (int off : new int[] {MAGIC_VALUE, VERSION_REG, DEVICE_ID, VENDOR_ID, DEVICE_FEATURES, QUEUE_NUM_MAX, INTERRUPT_STATUS,
            SHM_LEN_LOW, SHM_BASE_HIGH, CONFIG_GENERATION}) {
            w(off, 0x1234);
        }
        assertEquals(MAGIC, r(MAGIC_VALUE));
        assertEquals(0x3f, r(DEVICE_ID));
        // Reads of write-only registers read 0.
        for (int off : new int[] {DEVICE_FEATURES_SEL, DRIVER_FEATURES, DRIVER_FEATURES_SEL, QUEUE_SEL, QUEUE_NUM, QUEUE_NOTIFY,
            INTERRUPT_ACK, QUEUE_DESC_LOW, QUEUE_DESC_HIGH, QUEUE_DRIVER_LOW, QUEUE_DEVICE_HIGH, SHM_SEL}) {
            assertEquals(0, r(off), "register 0x" + Integer.toHexString(off));
        }
        // Wrong widths, misaligned, unknown and out-of-window offsets.
        for (int width : new int[] {0, 1, 2, 3, 8, -1}) {
            assertEquals(0, t.read(MAGIC_VALUE, width));
            t.write(STATUS, width, 0);
        }
        assertEquals(0, t.read(MAGIC_VALUE + 1, 4));
        t.write(STATUS + 2, 4, 0);
        assertEquals(0, r(0x018));
        w(0x0f8, 1);
        assertEquals(0, t.read(WINDOW, 4));
        assertEquals(0, t.read(-4, 4));
        assertEquals(0, t.read(Long.MAX_VALUE, 4));
        t.write(0x10000, 4, 1);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, r(STATUS), "nothing changed the status");
        initAndEcho();
    }

    @Test
    void statusRegressionsAndNeedsResetFromTheDriverAreIgnored() throws Exception {
        negotiate(ALL_FEATURES);
        w(STATUS, DeviceStatus.ACKNOWLEDGE); // clears DRIVER and FEATURES_OK without a reset
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, r(STATUS));
        w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DEVICE_NEEDS_RESET);
        assertEquals(0, r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET, "the device's bit is not the driver's to set");
        w(STATUS, 0x100 | DeviceStatus.ACKNOWLEDGE);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, r(STATUS));
        w(STATUS, 0);
        w(STATUS, DeviceStatus.DRIVER_OK); // out of order
        assertEquals(0, r(STATUS));
        initAndEcho();
    }

    @Test
    void resetDuringIoAndQueueReset() throws Exception {
        negotiate(ALL_FEATURES);
        SplitQueueDriver d = queue(0, RING, 16);
        driverOk();
        for (int i = 0; i < 8; i++) {
            assertTrue(d.add(new long[] {BUF + 64L * i, BUF + 0x8000 + 64L * i}, new int[] {8, 8}, 2, 1, i) >= 0);
        }
        d.publish();
        w(QUEUE_NOTIFY, 0);
        w(STATUS, 0); // while those are served
        assertEquals(0, r(STATUS));
        initAndEcho();
        // QueueReset (RING_RESET negotiated by initAndEcho): the queue stops and can be set up again.
        w(QUEUE_SEL, 1);
        w(QUEUE_RESET, 1);
        assertEquals(0, r(QUEUE_RESET));
        assertEquals(0, r(QUEUE_READY));
        SplitQueueDriver again = queue(1, RING + 0x8000, 16);
        echo(again, 1, 12);
    }

    @Test
    void queueResetWithoutRingResetIsIgnored() throws Exception {
        negotiate(VirtioFeatures.RING_FEATURES);
        SplitQueueDriver d = queue(0, RING, 16);
        driverOk();
        w(QUEUE_SEL, 0);
        w(QUEUE_RESET, 1);
        assertEquals(1, r(QUEUE_READY), "still ready");
        echo(d, 0, 3);
    }
}
