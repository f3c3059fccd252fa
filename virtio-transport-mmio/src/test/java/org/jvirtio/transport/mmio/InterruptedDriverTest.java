package org.jvirtio.transport.mmio;

import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.testkit.EchoDevice;
import org.jvirtio.testkit.TestMemory;
import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A VMM thread that writes DRIVER_OK while it is interrupted (its interrupt flag set, as a
 * JUnit timeout or a VMM's own shutdown does) still gets the queues started: the device answers in
 * that very session, and the flag is kept for the caller. Found by {@code RegisterFileFuzzTest}:
 * the queue's start on its I/O thread was abandoned at the interrupt, DRIVER_OK was set anyway,
 * and the driver's requests were never served (no DEVICE_NEEDS_RESET either). On both hosts.
 */
class InterruptedDriverTest {
    GuestMemory mem;
    IoThreads io;
    EchoDevice device;
    MmioTransport t;
    MmioDriver d;

    /** A device on {@code host}'s kind of host, probed and negotiated, queue 0 set up with 16 entries. */
    MmioDriver.Queue setUp(String host) throws Exception {
        mem = TestMemory.memfd(1 << 20);
        io = host.startsWith("I/O") ? new IoThreads(1, 0) : null;
        device = new EchoDevice(2).queueSizeLimit(64);
        t = new MmioTransport(device, mem, io != null ? io : QueueHost.THREAD_PER_QUEUE, InterruptLine.NONE);
        d = MmioDriver.probe(t, mem, 0x10000, 0x40000, null);
        d.negotiate(VirtioFeatures.RING_FEATURES);
        return d.setupQueue(0, 16);
    }

    /** DRIVER_OK written by a thread whose interrupt flag is set; the flag must still be set after. */
    void driverOkWhileInterrupted() {
        Thread.currentThread().interrupt();
        try {
            d.driverOk();
        } finally {
            assertTrue(Thread.interrupted(), "the interrupt is kept for the caller");
        }
    }

    @AfterEach
    void tearDown() {
        if (t != null) {
            t.close();
        }
        if (io != null) {
            io.close();
        }
        if (mem != null) {
            mem.release();
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread per queue", "I/O threads"})
    void driverOkWrittenByAnInterruptedThreadStartsTheQueues(String host) throws Exception {
        MmioDriver.Queue q = setUp(host);
        driverOkWhileInterrupted();
        long buf = d.allocate(64, 64);
        mem.writeU32(buf, 0x12345678);
        assertTrue(q.ring().add(new long[] {buf, buf + 32}, new int[] {4, 4}, 2, 1, 1) >= 0);
        q.publish();
        int[] len = {-1};
        assertEquals(1, q.awaitUsed((h, tok, l) -> len[0] = l, 10_000), "no answer: the queue was not started");
        assertEquals(4, len[0]);
        assertEquals(~0x12345678 & 0xffffffffL, mem.readU32(buf + 32));
    }

    /**
     * The same interrupted DRIVER_OK write where the queue cannot start (its open fails): the
     * failure still reaches the transport, which sets DEVICE_NEEDS_RESET. The thread-per-queue
     * host used to return at the interrupt as if the queue had started.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread per queue", "I/O threads"})
    void aQueueThatCannotStartUnderAnInterruptedDriverOkSetsNeedsReset(String host) throws Exception {
        setUp(host);
        device.failOpen = true;
        driverOkWhileInterrupted();
        assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, d.status() & DeviceStatus.DEVICE_NEEDS_RESET);
    }
}
