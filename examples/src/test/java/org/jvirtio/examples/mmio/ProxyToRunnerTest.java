package org.jvirtio.examples.mmio;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Random;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.mmio.InterruptLine;
import org.jvirtio.transport.mmio.MmioDriver;
import org.jvirtio.transport.mmio.MmioTransport;
import org.jvirtio.proxy.VhostUserProxy;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * blk over MMIO served through the proxy by {@code bin/vhost-user blk} itself (the runner with
 * its blk subcommand, on the I/O threads with io_uring on an image): 64 random 4 KiB writes at
 * queue depth 16, a flush, every block read back and verified.
 */
class ProxyToRunnerTest {
    @TempDir
    Path dir;

    /**
     * A net backend offers GUEST_ANNOUNCE and MQ over vhost-user, where QEMU serves the control
     * queue they need; the proxy serves none, so its MMIO driver is offered neither (VIRTIO 1.3,
     * 5.1.3.1; Linux would refuse the device), and the rest of the backend's bits go through.
     */
    @Test
    void aNetBackendBehindTheProxyOffersNothingThatNeedsAControlQueue() throws Exception {
        Path sock = dir.resolve("net.sock");
        GuestMemory mem = TestMemory.memfd(8 << 20);
        try (var backend = VhostUserRunner.start(VhostUserRunner.devices(), "net", "--socket", sock.toString(), "--switch",
                "proxy" + System.nanoTime(), "--queue-pairs", "2");
             EventFd irq = EventFd.create(true);
             VhostUserProxy proxy = VhostUserProxy.connect(sock, 1, mem, 12);
             MmioTransport t = new MmioTransport(proxy, mem, proxy.host(), InterruptLine.eventFd(irq))) {
            MmioDriver d = MmioDriver.probe(t, mem, 0x100000, 0x700000, irq);
            long negotiated = d.negotiate(~0L);
            long offered = d.deviceFeatures();
            assertEquals(offered, negotiated);
            assertEquals(0, offered & (1L << 21 | 1L << 22 | 1L << 17), "GUEST_ANNOUNCE, MQ, CTRL_VQ: 0x" + Long.toHexString(offered));
            assertEquals(1L << 5 | 1L << 16, offered & (1L << 5 | 1L << 16), "MAC and STATUS go through: 0x" + Long.toHexString(offered));
        } finally {
            mem.release();
        }
    }

    @Test
    void blkOverMmioServedByTheRunnersBlk() throws Exception {
        Path img = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(4 << 20);
        }
        Path sock = dir.resolve("blk.sock");
        GuestMemory mem = TestMemory.memfd(8 << 20);
        try (var backend = VhostUserRunner.start(VhostUserRunner.devices(), "blk", "--socket", sock.toString(), "--image", img.toString());
             EventFd irq = EventFd.create(true);
             VhostUserProxy proxy = VhostUserProxy.connect(sock, VirtioBlk.DEVICE_ID, mem, 60);
             MmioTransport t = new MmioTransport(proxy, mem, proxy.host(), InterruptLine.eventFd(irq))) {
            MmioDriver d = MmioDriver.probe(t, mem, 0x100000, 0x700000, irq);
            d.negotiate(~0L);
            MmioDriver.Queue q = d.setupQueue(0, 128);
            d.driverOk();
            int depth = 16;
            long hdrs = d.allocate(16L * depth, 16);
            long status = d.allocate(depth, 1);
            long data = d.allocate(4096L * depth, 4096);
            Random rnd = new Random(5);
            byte[][] blocks = new byte[64][4096];
            for (int type : new int[] {VirtioBlk.T_OUT, VirtioBlk.T_FLUSH, VirtioBlk.T_IN}) {
                int n = type == VirtioBlk.T_FLUSH ? 1 : 64;
                for (int first = 0; first < n; first += depth) {
                    int batch = Math.min(depth, n - first);
                    for (int i = 0; i < batch; i++) {
                        int b = first + i;
                        mem.writeU32(hdrs + 16L * i, type);
                        mem.writeU32(hdrs + 16L * i + 4, 0);
                        mem.writeU64(hdrs + 16L * i + 8, 8L * ((b * 37) % 1024)); // scattered over the disk
                        mem.writeU8(status + i, 0xee);
                        if (type == VirtioBlk.T_FLUSH) {
                            assertTrue(q.ring().add(new long[] {hdrs + 16L * i, status + i}, new int[] {16, 1}, 2, 1, b) >= 0);
                            continue;
                        }
                        if (type == VirtioBlk.T_OUT) {
                            rnd.nextBytes(blocks[b]);
                            mem.write(data + 4096L * i, MemorySegment.ofArray(blocks[b]));
                        }
                        assertTrue(q.ring().add(new long[] {hdrs + 16L * i, data + 4096L * i, status + i}, new int[] {16, 4096, 1}, 3,
                                type == VirtioBlk.T_OUT ? 2 : 1, b) >= 0);
                    }
                    q.publish();
                    awaitAll(d, q.ring(), batch);
                    for (int i = 0; i < batch; i++) {
                        assertEquals(VirtioBlk.S_OK, mem.readU8(status + i), "request " + (first + i));
                        if (type == VirtioBlk.T_IN) {
                            byte[] back = new byte[4096];
                            mem.read(data + 4096L * i, MemorySegment.ofArray(back));
                            assertArrayEquals(blocks[first + i], back, "block " + (first + i));
                        }
                    }
                }
            }
            d.reset();
        } finally {
            mem.release();
        }
    }

    private static void awaitAll(MmioDriver d, org.jvirtio.ring.QueueDriver ring, int n) throws Exception {
        int got = 0;
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (got < n) {
            got += ring.pollUsed((h, t, l) -> { });
            if (got < n && !ring.enableInterrupts()) {
                d.awaitInterrupt(100);
                assertTrue(System.nanoTime() < deadline, "only " + got + " of " + n + " answered");
            }
        }
    }
}
