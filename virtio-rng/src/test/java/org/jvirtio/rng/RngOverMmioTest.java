package org.jvirtio.rng;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.host.QueueHost;
import org.jvirtio.testkit.TestMemory;
import org.jvirtio.transport.mmio.InterruptLine;
import org.jvirtio.transport.mmio.MmioDriver;
import org.jvirtio.transport.mmio.MmioTransport;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** virtio-rng over the MMIO transport, driven as Linux's virtio_mmio driver does ({@link MmioDriver}). */
class RngOverMmioTest {
    static final long MEM = 8 << 20;

    @Test
    void rngOverMmio() throws Exception {
        GuestMemory mem = TestMemory.memfd(MEM);
        EventFd irq = EventFd.create(true);
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
            int[] len = {-1};
            assertEquals(1, q.awaitUsed((h, tok, l) -> len[0] = l, 10_000));
            assertEquals(4096, len[0]);
            long nonZero = 0;
            for (int i = 0; i < 4096; i += 8) {
                nonZero += mem.readU64(buf + i) != 0 ? 1 : 0;
            }
            assertTrue(nonZero > 500, "random bytes arrived");
        } finally {
            irq.close();
            mem.release();
        }
    }
}
