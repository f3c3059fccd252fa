package org.jvirtio.blk;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.testkit.transports.TransportRig;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.Parameter;
import org.junit.jupiter.params.ParameterizedClass;

import static org.jvirtio.blk.VirtioBlk.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * virtio-blk requests as a guest sends them (or a careless or hostile one), through a real ring
 * in memfd memory, the same tests over every transport (issue 11) and both ring layouts (issue
 * 25): directly on the queue engine, over vhost-user (a backend on a Unix socket, the Java
 * front-end) and over virtio-mmio (the register window), each split and packed. The device's
 * engine-level behaviour (serve budget, faults, log rates) is tested where the engine is, in
 * virtio-blk's VirtioBlkRequestTest.
 */
@ParameterizedClass(name = "{0}, packed={1}")
@org.junit.jupiter.params.provider.MethodSource("transportsAndLayouts")
class BlkRequestTest {
    static final long DISK = 1 << 20;
    static final long HDR = 0x100000;
    static final long DATA = 0x110000;
    static final long STATUS = 0x1f0000;

    @Parameter(0)
    TransportRig.Kind kind;
    @Parameter(1)
    boolean packed;
    GuestMemory mem;
    QueueDriver driver;
    VirtioBlkDevice device;
    TransportRig rig;

    /** Every transport, each with either ring layout. */
    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> transportsAndLayouts() {
        return java.util.Arrays.stream(TransportRig.Kind.values())
                .flatMap(k -> java.util.stream.Stream.of(org.junit.jupiter.params.provider.Arguments.of(k, false),
                        org.junit.jupiter.params.provider.Arguments.of(k, true)));
    }

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(2 << 20);
        use(new RamBackend(DISK), BlkOptions.defaults());
    }

    /** The device on {@code backend} behind this class's transport, queue 0 at 0x1000. */
    void use(BlockBackend backend, BlkOptions options) throws Exception {
        if (rig != null) {
            rig.close();
        }
        device = new VirtioBlkDevice(backend, options);
        rig = kind.start(device, mem, packed ? ~0L : TransportRig.ALL_SPLIT);
        assertEquals(packed, VirtioFeatures.has(rig.features(), VirtioFeatures.RING_PACKED), "the layout negotiated");
        mem.slice(0x1000, 0xf000).fill((byte) 0);
        driver = QueueDriver.at(mem, 0x1000, 256, rig.features(), 0x10000, 32);
        rig.startQueue(0, driver);
    }

    @AfterEach
    void tearDown() throws Exception {
        rig.close();
        device.backend().close();
        mem.release();
    }

    void header(int type, long sector) {
        mem.writeU32(HDR, type);
        mem.writeU32(HDR + 4, 0);
        mem.writeU64(HDR + 8, sector);
        mem.writeU8(STATUS, 0xee);
    }

    /** Submits a chain and lets the device serve it; returns {status, used length}. */
    int[] serve(long[] addrs, int[] lens, int readable) throws Exception {
        assertTrue(driver.add(addrs, lens, addrs.length, readable, 0) >= 0);
        driver.publish();
        assertTrue(rig.kickAndWait(0, driver::hasUsed, 5000), kind + ": no answer within 5 s");
        int[] len = {-1};
        assertEquals(1, driver.pollUsed((h, t, l) -> len[0] = l));
        assertFalse(rig.needsReset(), kind + ": the ring is fine");
        return new int[] {mem.readU8(STATUS), len[0]};
    }

    int[] rw(int type, long sector, int len) throws Exception {
        header(type, sector);
        if (len == 0) {
            return serve(new long[] {HDR, STATUS}, new int[] {16, 1}, 1);
        }
        return serve(new long[] {HDR, DATA, STATUS}, new int[] {16, len, 1}, type == T_OUT ? 2 : 1);
    }

    static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 13 + seed);
        }
        return b;
    }

    private int[] dwz(int type, long[][] segs) throws Exception {
        header(type, 0);
        ByteBuffer b = ByteBuffer.allocate(segs.length * 16).order(ByteOrder.LITTLE_ENDIAN);
        for (long[] s : segs) {
            b.putLong(s[0]).putInt((int) s[1]).putInt((int) s[2]);
        }
        mem.write(DATA, MemorySegment.ofArray(b.array()));
        return serve(new long[] {HDR, DATA, STATUS}, new int[] {16, segs.length * 16, 1}, 2);
    }

    @Test
    void writeThenReadBack() throws Exception {
        byte[] p = pattern(4096, 1);
        mem.write(DATA, MemorySegment.ofArray(p));
        assertArrayEquals(new int[] {S_OK, 1}, rw(T_OUT, 10, 4096));
        mem.write(DATA, MemorySegment.ofArray(new byte[4096]));
        assertArrayEquals(new int[] {S_OK, 4097}, rw(T_IN, 10, 4096));
        byte[] back = new byte[4096];
        mem.read(DATA, MemorySegment.ofArray(back));
        assertArrayEquals(p, back);
        assertEquals(2, device.stats(0).requests());
        assertEquals(8192, device.stats(0).bytes());
    }

    @Test
    void anyDescriptorLayoutWorks() throws Exception {
        // header in 16 one-byte descriptors, data in 8 pieces of 64, status alone
        byte[] p = pattern(512, 7);
        mem.write(DATA, MemorySegment.ofArray(p));
        header(T_OUT, 3);
        long[] a = new long[25];
        int[] l = new int[25];
        for (int i = 0; i < 16; i++) {
            a[i] = HDR + i;
            l[i] = 1;
        }
        for (int i = 0; i < 8; i++) {
            a[16 + i] = DATA + 64L * i;
            l[16 + i] = 64;
        }
        a[24] = STATUS;
        l[24] = 1;
        assertEquals(S_OK, serve(a, l, 24)[0]);
        // read back with the status byte in the same descriptor as the data
        mem.write(DATA, MemorySegment.ofArray(new byte[600]));
        header(T_IN, 3);
        int[] r = serve(new long[] {HDR, DATA}, new int[] {16, 513}, 1);
        assertEquals(S_OK, mem.readU8(DATA + 512));
        assertEquals(513, r[1]);
        byte[] back = new byte[512];
        mem.read(DATA, MemorySegment.ofArray(back));
        assertArrayEquals(p, back);
    }

    @Test
    void readAtTheLastSectorAndOnePast() throws Exception {
        assertEquals(S_OK, rw(T_IN, DISK / 512 - 1, 512)[0]);
        // A failed read still reports the chain's whole writable length (QEMU's in_len): the
        // status byte is its last byte, so a dirty log marking the used length covers it.
        assertArrayEquals(new int[] {S_IOERR, 513}, rw(T_IN, DISK / 512, 512));
        assertArrayEquals(new int[] {S_IOERR, 1025}, rw(T_IN, DISK / 512 - 1, 1024));
        assertEquals(S_OK, rw(T_IN, DISK / 512, 0)[0], "a zero-length read at the end is in range");
    }

    @Test
    void sectorOverflowIsAnError() throws Exception {
        assertEquals(S_IOERR, rw(T_IN, -1L, 512)[0]);
        assertEquals(S_IOERR, rw(T_OUT, Long.MAX_VALUE, 512)[0]);
        assertEquals(S_IOERR, rw(T_IN, 0x0080_0000_0000_0000L, 512)[0]);
    }

    @Test
    void lengthNotAMultipleOf512() throws Exception {
        assertEquals(S_IOERR, rw(T_IN, 0, 100)[0]);
        assertEquals(S_IOERR, rw(T_OUT, 0, 513)[0]);
        assertEquals(2, device.stats(0).errors());
    }

    @Test
    void writeToAReadOnlyDisk() throws Exception {
        device.backend().close();
        use(new RamBackend(DISK), new BlkOptions(1, 256, "ro", true));
        assertTrue(VirtioFeatures.has(device.deviceFeatures(), VirtioBlk.BLK_RO));
        assertFalse(VirtioFeatures.has(device.deviceFeatures(), VirtioBlk.BLK_DISCARD));
        assertEquals(S_IOERR, rw(T_OUT, 0, 512)[0]);
        assertEquals(S_OK, rw(T_IN, 0, 512)[0]);
        header(T_WRITE_ZEROES, 0);
        assertEquals(S_UNSUPP, rw(T_WRITE_ZEROES, 0, 0)[0]);
    }

    @Test
    void missingStatusByteIsReturnedUnanswered() throws Exception {
        header(T_IN, 0);
        int[] r = serve(new long[] {HDR, DATA}, new int[] {16, 512}, 2);
        assertEquals(0, r[1]);
        assertEquals(0xee, r[0], "nothing was written");
        assertEquals(1, device.stats(0).errors());
    }

    @Test
    void headerTooShort() throws Exception {
        header(T_IN, 0);
        assertEquals(S_IOERR, serve(new long[] {HDR, STATUS}, new int[] {8, 1}, 1)[0]);
    }

    @Test
    void unknownAndUnimplementedTypes() throws Exception {
        assertEquals(S_UNSUPP, rw(99, 0, 0)[0]);
        assertEquals(S_UNSUPP, rw(T_GET_LIFETIME, 0, 0)[0]);
        assertEquals(S_UNSUPP, rw(T_SECURE_ERASE, 0, 0)[0]);
    }

    @Test
    void getIdReturnsTheSerialPadded() throws Exception {
        device.backend().close();
        use(new RamBackend(DISK), new BlkOptions(1, 256, "disk-42", false));
        int[] r = rw(T_GET_ID, 0, 20 * 0 + 0);
        assertEquals(S_OK, r[0], "no room for the id: status only");
        header(T_GET_ID, 0);
        r = serve(new long[] {HDR, DATA, STATUS}, new int[] {16, 20, 1}, 1);
        assertEquals(S_OK, r[0]);
        assertEquals(21, r[1]);
        byte[] id = new byte[20];
        mem.read(DATA, MemorySegment.ofArray(id));
        byte[] expected = new byte[20];
        System.arraycopy("disk-42".getBytes(StandardCharsets.US_ASCII), 0, expected, 0, 7);
        assertArrayEquals(expected, id);
    }

    @Test
    void flushSucceeds() throws Exception {
        assertEquals(S_OK, rw(T_FLUSH, 0, 0)[0]);
    }

    @Test
    void discardAndWriteZeroes() throws Exception {
        mem.write(DATA, MemorySegment.ofArray(pattern(4096, 3)));
        rw(T_OUT, 0, 4096);
        assertEquals(S_OK, dwz(T_DISCARD, new long[][] {{0, 2, 0}, {4, 2, 0}})[0]);
        assertEquals(S_OK, dwz(T_WRITE_ZEROES, new long[][] {{6, 2, DWZ_F_UNMAP}})[0]);
        rw(T_IN, 0, 4096);
        byte[] back = new byte[4096];
        mem.read(DATA, MemorySegment.ofArray(back));
        byte[] expected = pattern(4096, 3);
        java.util.Arrays.fill(expected, 0, 1024, (byte) 0);
        java.util.Arrays.fill(expected, 2048, 4096, (byte) 0);
        assertArrayEquals(expected, back);
    }

    @Test
    void discardMistakes() throws Exception {
        assertEquals(S_UNSUPP, dwz(T_DISCARD, new long[][] {{0, 1, DWZ_F_UNMAP}})[0], "discard takes no flags");
        assertEquals(S_UNSUPP, dwz(T_WRITE_ZEROES, new long[][] {{0, 1, 4}})[0], "unknown flag");
        assertEquals(S_IOERR, dwz(T_DISCARD, new long[][] {{DISK / 512, 1, 0}})[0], "past the end");
        assertEquals(S_IOERR, dwz(T_DISCARD, new long[][] {{-1L, 1, 0}})[0], "sector overflow");
        assertEquals(S_IOERR, dwz(T_WRITE_ZEROES, new long[][] {{0, VirtioBlkDevice.MAX_WRITE_ZEROES_SECTORS + 1, 0}})[0], "too many sectors");
        long[][] many = new long[VirtioBlkDevice.MAX_DISCARD_SEG + 1][];
        for (int i = 0; i < many.length; i++) {
            many[i] = new long[] {i, 1, 0};
        }
        assertEquals(S_IOERR, dwz(T_DISCARD, many)[0], "more segments than max_discard_seg");
        header(T_DISCARD, 0);
        assertEquals(S_IOERR, serve(new long[] {HDR, DATA, STATUS}, new int[] {16, 20, 1}, 2)[0], "not a multiple of 16 bytes");
        assertEquals(S_IOERR, rw(T_DISCARD, 0, 0)[0], "no segment");
    }
}
