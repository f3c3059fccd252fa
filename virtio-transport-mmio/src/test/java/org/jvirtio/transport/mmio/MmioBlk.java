package org.jvirtio.transport.mmio;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.ring.SplitQueueDriver;

import static org.junit.jupiter.api.Assertions.*;

/** virtio-blk requests through the MMIO driver, for the tests of this module. */
final class MmioBlk {
    private MmioBlk() {
    }

    /** Waits (on interrupts) for the one used element of a request just published. */
    static int awaitOne(MmioDriver d, SplitQueueDriver ring) throws Exception {
        int[] len = {-1};
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (true) {
            if (ring.pollUsed((h, t, l) -> len[0] = l) > 0) {
                return len[0];
            }
            if (ring.enableInterrupts()) {
                continue;
            }
            d.awaitInterrupt(100);
            assertTrue(System.nanoTime() < deadline, "no used element within 10 s");
        }
    }

    static int request(GuestMemory mem, MmioDriver d, MmioDriver.Queue q, long hdr, int type, long sector, long data, int len, long status)
            throws Exception {
        mem.writeU32(hdr, type);
        mem.writeU32(hdr + 4, 0);
        mem.writeU64(hdr + 8, sector);
        mem.writeU8(status, 0xee);
        boolean out = type == VirtioBlk.T_OUT;
        long[] addrs = len == 0 ? new long[] {hdr, status} : new long[] {hdr, data, status};
        int[] lens = len == 0 ? new int[] {16, 1} : new int[] {16, len, 1};
        assertTrue(q.ring().add(addrs, lens, addrs.length, out ? 2 : 1, type) >= 0);
        q.publish();
        awaitOne(d, q.ring());
        return mem.readU8(status);
    }

}
