package org.jvirtio.api;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class GuestMemoryTest {
    private static final long SIZE = 64 * 1024;
    private MemoryMapping low;
    private MemoryMapping high;
    private GuestMemory memory;

    @BeforeEach
    void setUp() throws Exception {
        low = MemoryMapping.memfd("low", SIZE);
        high = MemoryMapping.memfd("high", SIZE);
        // Adjacent in guest physical space, separate host mappings: ranges may cross.
        memory = GuestMemory.of(GuestRegion.of(0x10000, low), GuestRegion.of(0x20000, high));
        low.release();
        high.release();
    }

    @AfterEach
    void tearDown() {
        memory.release();
    }

    @Test
    void findsRegionsAndRejectsGaps() {
        assertEquals(0, memory.findRegion(0x10000));
        assertEquals(0, memory.findRegion(0x1ffff));
        assertEquals(1, memory.findRegion(0x20000));
        assertEquals(-1, memory.findRegion(0x30000));
        assertEquals(-1, memory.findRegion(0xffff));
        assertEquals(-1, memory.findRegion(-1L));
        assertTrue(memory.contains(0x1fff0, 0x20));
        assertFalse(memory.contains(0x2fff0, 0x20));
        assertFalse(memory.contains(-16, 32), "a range wrapping around 2^64 is not in memory");
        assertTrue(memory.contains(0x12345, 0));
    }

    @Test
    void littleEndianAccessorsWorkAcrossTheBoundary() {
        memory.writeU64(0x1fffc, 0x1122334455667788L);
        assertEquals(0x1122334455667788L, memory.readU64(0x1fffc));
        assertEquals(0x55667788L, memory.readU32(0x1fffc));
        assertEquals(0x1122, memory.readU16(0x20002));
        assertEquals(0x88, memory.readU8(0x1fffc));
        assertEquals((byte) 0x44, high.segment().get(ValueLayout.JAVA_BYTE, 0), "the high half lives in the second mapping");
        memory.writeU16(0x1ffff, 0xbeef);
        assertEquals(0xbeef, memory.readU16(0x1ffff));
        memory.writeU32(0x1fffe, 0xcafebabeL);
        assertEquals(0xcafebabeL, memory.readU32(0x1fffe));
    }

    @Test
    void sliceNeedsOneRegion() {
        assertEquals(SIZE, memory.slice(0x10000, SIZE).byteSize());
        assertTrue(memory.contains(0x1ff00, 0x200), "a range across two regions is in memory");
        assertThrows(GuestMemoryException.class, () -> memory.slice(0x1ff00, 0x200), "slice needs one region");
        assertThrows(GuestMemoryException.class, () -> memory.slice(0x2ff00, 0x200));
    }

    @Test
    void outOfRangeAccessIsAnErrorNotACrash() {
        assertThrows(GuestMemoryException.class, () -> memory.readU8(0));
        assertThrows(GuestMemoryException.class, () -> memory.readU64(0x2fffc));
        assertThrows(GuestMemoryException.class, () -> memory.writeU32(0x30000, 1));
        assertThrows(GuestMemoryException.class, () -> memory.readU64(Long.MAX_VALUE));
        assertThrows(GuestMemoryException.class, () -> memory.read(0x2ff00, MemorySegment.ofArray(new byte[0x200])));
        GuestMemoryException e = assertThrows(GuestMemoryException.class, () -> memory.slice(-8, 16));
        assertTrue(e.getMessage().contains("0xfffffffffffffff8"), e.getMessage());
    }

    @Test
    void bulkCopyCrossesRegions() {
        byte[] data = new byte[300];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) i;
        }
        memory.write(0x1ff80, MemorySegment.ofArray(data));
        byte[] back = new byte[300];
        memory.read(0x1ff80, MemorySegment.ofArray(back));
        assertArrayEquals(data, back);
    }

    @Test
    void overlappingRegionsAreRefused() throws Exception {
        MemoryMapping m = MemoryMapping.memfd("x", SIZE);
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> GuestMemory.of(GuestRegion.of(0, m), GuestRegion.of(0x8000, m)));
            assertTrue(e.getMessage().contains("overlap"), e.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> GuestMemory.of(new GuestRegion(0, SIZE, 0x7000_0000L, m, 0), new GuestRegion(0x100000, SIZE, 0x7000_8000L, m, 0)));
            assertThrows(IllegalArgumentException.class, () -> new GuestRegion(0, 0, 0, m, 0));
            assertThrows(IllegalArgumentException.class, () -> new GuestRegion(-4096, 8192, 0, m, 0));
            assertThrows(IllegalArgumentException.class, () -> new GuestRegion(0, SIZE, 0, m, 4096), "region longer than its mapping");
        } finally {
            m.release();
        }
    }

    @Test
    void userAddressesTranslateToGuestAddresses() throws Exception {
        MemoryMapping m = MemoryMapping.memfd("u", SIZE);
        GuestMemory mem = GuestMemory.of(new GuestRegion(0x100000, SIZE, 0x7f00_0000_0000L, m, 0));
        m.release();
        try {
            assertEquals(0x100010, mem.userToGuest(0x7f00_0000_0010L, 16));
            assertThrows(GuestMemoryException.class, () -> mem.userToGuest(0x7f00_0000_0000L + SIZE - 8, 16));
            assertThrows(GuestMemoryException.class, () -> mem.userToGuest(0x1000, 16));
        } finally {
            mem.release();
        }
    }

    @Test
    void lastReleaseUnmaps() throws Exception {
        MemoryMapping m = MemoryMapping.memfd("r", SIZE);
        GuestMemory a = GuestMemory.of(GuestRegion.of(0, m));
        m.release(); // a holds the only reference now
        GuestMemory b = a.withRegion(GuestRegion.of(0x100000, MemoryMapping.memfd("r2", SIZE)));
        // b retained both mappings; releasing a keeps the first one mapped
        a.release();
        assertTrue(m.isMapped());
        b.writeU32(0, 42);
        assertEquals(42, b.readU32(0));
        GuestMemory c = b.withoutRegion(0x100000, SIZE);
        assertNotNull(c);
        assertNull(b.withoutRegion(0x200000, SIZE));
        MemorySegment seg = b.regionSegment(1);
        b.release();
        // the second mapping: created with one reference that nobody released but b's retain;
        // it is still referenced by its creator, so it stays mapped
        assertTrue(seg.scope().isAlive());
        c.release();
        assertFalse(m.isMapped(), "last user gone: unmapped");
        assertThrows(IllegalStateException.class, () -> m.segment().get(ValueLayout.JAVA_BYTE, 0));
        assertThrows(IllegalStateException.class, c::retain);
    }

    @Test
    void mapsAFileDescriptorAtAnUnalignedOffset(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path f = dir.resolve("img");
        byte[] content = new byte[3 * 4096];
        content[4096 + 100] = 77;
        Files.write(f, content);
        try (var ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.READ, java.nio.file.StandardOpenOption.WRITE);
             Arena arena = Arena.ofConfined()) {
            int fd = fdOf(f);
            try {
                MemoryMapping m = MemoryMapping.map(fd, 4096 + 100, 64);
                assertEquals(77, m.segment().get(ValueLayout.JAVA_BYTE, 0));
                assertEquals(64, m.size());
                m.release();
            } finally {
                org.jvirtio.api.linux.Libc.close(fd);
            }
        }
    }

    private static int fdOf(Path f) throws Exception {
        // Open through /proc-free means: a memfd is enough elsewhere; here use the file itself.
        var open = java.lang.foreign.Linker.nativeLinker().downcallHandle(
                java.lang.foreign.Linker.nativeLinker().defaultLookup().find("open").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT),
                java.lang.foreign.Linker.Option.firstVariadicArg(2));
        try (Arena arena = Arena.ofConfined()) {
            int fd = (int) open.invokeExact(arena.allocateFrom(f.toString()), 2 /* O_RDWR */);
            assertTrue(fd >= 0);
            return fd;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
