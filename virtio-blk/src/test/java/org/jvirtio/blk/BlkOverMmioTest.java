package org.jvirtio.blk;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.host.QueueHost;
import org.jvirtio.testkit.TestMemory;
import org.jvirtio.transport.mmio.InterruptLine;
import org.jvirtio.transport.mmio.MmioDriver;
import org.jvirtio.transport.mmio.MmioRegisters;
import org.jvirtio.transport.mmio.MmioTransport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** virtio-blk over the MMIO transport, driven as Linux's virtio_mmio and virtio_blk drivers do ({@link MmioDriver}). */
class BlkOverMmioTest {
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
            assertEquals(VirtioBlk.S_OK, BlkOverMmio.request(mem, d, q, hdr, VirtioBlk.T_OUT, 100, data, 8192, status));
            assertEquals(VirtioBlk.S_OK, BlkOverMmio.request(mem, d, q, hdr, VirtioBlk.T_FLUSH, 0, data, 0, status));
            mem.write(data, MemorySegment.ofArray(new byte[8192]));
            assertEquals(VirtioBlk.S_OK, BlkOverMmio.request(mem, d, q, hdr, VirtioBlk.T_IN, 100, data, 8192, status));
            byte[] back = new byte[8192];
            mem.read(data, MemorySegment.ofArray(back));
            assertArrayEquals(pattern, back, "read back what was written");
            assertEquals(VirtioBlk.S_OK, BlkOverMmio.request(mem, d, q, hdr, VirtioBlk.T_GET_ID, 0, data, VirtioBlk.ID_BYTES, status));
            byte[] id = new byte[9];
            mem.read(data, MemorySegment.ofArray(id));
            assertEquals("mmio-disk", new String(id, StandardCharsets.US_ASCII));
            assertEquals(VirtioBlk.S_IOERR, BlkOverMmio.request(mem, d, q, hdr, VirtioBlk.T_IN, 2047, data, 4096, status), "past the end");
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
            int before = t.read(MmioRegisters.CONFIG_GENERATION, 4);
            d.driverOk();
            long hdr = d.allocate(16, 16);
            long data = d.allocate(4096, 4096);
            long status = d.allocate(1, 1);
            assertEquals(VirtioBlk.S_OK, BlkOverMmio.request(mem, d, q, hdr, VirtioBlk.T_IN, 0, data, 4096, status));
            assertEquals(before, t.read(MmioRegisters.CONFIG_GENERATION, 4), "no change at DRIVER_OK or from I/O");
            try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
                f.setLength(2 << 20);
            }
            assertEquals(4096, blk.refreshCapacity());
            assertNotEquals(before, t.read(MmioRegisters.CONFIG_GENERATION, 4), "the generation moved");
            assertEquals(MmioRegisters.INT_CONFIG, d.awaitInterrupt(2000) & MmioRegisters.INT_CONFIG, "a configuration interrupt");
            byte[] cap = d.readConfig(VirtioBlk.CFG_CAPACITY, 8);
            assertEquals(4096, java.nio.ByteBuffer.wrap(cap).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong());
            int after = t.read(MmioRegisters.CONFIG_GENERATION, 4);
            assertEquals(after, t.read(MmioRegisters.CONFIG_GENERATION, 4), "and holds still");
        } finally {
            blk.backend().close();
        }
    }
}
