package org.jvirtio.blk;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.transport.mmio.MmioDriver;

import static org.junit.jupiter.api.Assertions.*;

/**
 * One virtio-blk request through the MMIO driver, as Linux's virtio_blk sends it: header, data,
 * status byte; waits for it on the interrupt. For this module's tests and, through its test jar,
 * the proxy's.
 */
public final class BlkOverMmio {
    private BlkOverMmio() {
    }

    /** Sends request {@code type} for {@code sector} with {@code len} bytes of data at {@code data}; returns the status byte. */
    public static int request(GuestMemory mem, MmioDriver d, MmioDriver.Queue q, long hdr, int type, long sector, long data, int len, long status)
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
        assertEquals(1, q.awaitUsed((h, t, l) -> { }, 10_000), "no answer within 10 s");
        return mem.readU8(status);
    }
}
