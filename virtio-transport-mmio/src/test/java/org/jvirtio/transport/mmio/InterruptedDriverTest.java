package org.jvirtio.transport.mmio;

import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.testkit.EchoDevice;
import org.jvirtio.testkit.TestMemory;
import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A VMM thread that writes DRIVER_OK while it is interrupted (its interrupt flag set, as a
 * JUnit timeout or a VMM's own shutdown does) still gets the queues started: the device answers in
 * that very session, and the flag is kept for the caller. Found by {@code RegisterFileFuzzTest}:
 * the queue's start on its I/O thread was abandoned at the interrupt, DRIVER_OK was set anyway,
 * and the driver's requests were never served (no DEVICE_NEEDS_RESET either).
 */
class InterruptedDriverTest {
    @Test
    void driverOkWrittenByAnInterruptedThreadStartsTheQueues() throws Exception {
        GuestMemory mem = TestMemory.memfd(1 << 20);
        org.jvirtio.host.IoThreads host = new org.jvirtio.host.IoThreads(1, 0);
        MmioTransport t = new MmioTransport(new EchoDevice(2).queueSizeLimit(64), mem, host, InterruptLine.NONE);
        try {
            MmioDriver d = MmioDriver.probe(t, mem, 0x10000, 0x40000, null);
            d.negotiate(VirtioFeatures.RING_FEATURES);
            MmioDriver.Queue q = d.setupQueue(0, 16);
            Thread.currentThread().interrupt();
            try {
                d.driverOk();
            } finally {
                assertTrue(Thread.interrupted(), "the interrupt is kept for the caller");
            }
            long buf = d.allocate(64, 64);
            mem.writeU32(buf, 0x12345678);
            assertTrue(q.ring().add(new long[] {buf, buf + 32}, new int[] {4, 4}, 2, 1, 1) >= 0);
            q.publish();
            long deadline = System.nanoTime() + 10_000_000_000L;
            int[] len = {-1};
            while (q.ring().pollUsed((h, tok, l) -> len[0] = l) == 0) {
                assertTrue(System.nanoTime() < deadline, "no answer: the queue was not started");
                Thread.onSpinWait();
            }
            assertEquals(4, len[0]);
            assertEquals(~0x12345678 & 0xffffffffL, mem.readU32(buf + 32));
        } finally {
            t.close();
            host.close();
            mem.release();
        }
    }

    /**
     * The same interrupted DRIVER_OK write where the queue cannot start (its open fails): the
     * failure still reaches the transport, which sets DEVICE_NEEDS_RESET, on either host. The
     * thread-per-queue host used to return at the interrupt as if the queue had started.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread per queue", "I/O threads"})
    void aQueueThatCannotStartUnderAnInterruptedDriverOkSetsNeedsReset(String which) throws Exception {
        GuestMemory mem = TestMemory.memfd(1 << 20);
        IoThreads io = which.startsWith("I/O") ? new IoThreads(1, 0) : null;
        QueueHost host = io != null ? io : QueueHost.THREAD_PER_QUEUE;
        EchoDevice device = new EchoDevice(2).queueSizeLimit(64);
        MmioTransport t = new MmioTransport(device, mem, host, InterruptLine.NONE);
        try {
            MmioDriver d = MmioDriver.probe(t, mem, 0x10000, 0x40000, null);
            d.negotiate(VirtioFeatures.RING_FEATURES);
            d.setupQueue(0, 16);
            device.failOpen = true;
            Thread.currentThread().interrupt();
            try {
                d.driverOk();
            } finally {
                assertTrue(Thread.interrupted(), "the interrupt is kept for the caller");
            }
            assertEquals(DeviceStatus.DEVICE_NEEDS_RESET, d.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        } finally {
            t.close();
            if (io != null) {
                io.close();
            }
            mem.release();
        }
    }
}
