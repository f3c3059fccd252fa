package org.jvirtio.transport.vhostuser;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.time.Duration;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The Java front-end drives a real vhost-user implementation: qemu-storage-daemon's
 * vhost-user-blk export (Debian's qemu-system-common, installed by .ci/run). Negotiation,
 * GET_CONFIG, and block writes, reads and a flush through the driver-side ring.
 */
class QemuStorageDaemonInteropTest {
    /** virtio-blk feature bits (VIRTIO 1.3, 5.2.3) qemu-storage-daemon offers: this transport test knows no device module. */
    static final int BLK_SEG_MAX = 2;
    static final int BLK_BLK_SIZE = 6;
    static final int BLK_FLUSH = 9;

    private static final Path QSD = Path.of("/usr/bin/qemu-storage-daemon");
    private static final long IMAGE_SIZE = 8 << 20;
    private static final long HDR = FrontendRig.DATA;
    private static final long BUF = FrontendRig.DATA + 0x1000;
    private static final long STATUS = FrontendRig.DATA + 0x800;

    @TempDir
    Path dir;
    Process qsd;
    Path socket;
    Path image;

    @BeforeEach
    void startDaemon() throws Exception {
        boolean present = Files.isExecutable(QSD);
        if (System.getenv("CI") != null) {
            assertTrue(present, "CI must install qemu-storage-daemon (package qemu-system-common)");
        }
        assumeTrue(present, "qemu-storage-daemon is not installed");
        image = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(IMAGE_SIZE);
        }
        socket = dir.resolve("qsd.sock");
        qsd = new ProcessBuilder(QSD.toString(),
                "--blockdev", "driver=file,node-name=file0,filename=" + image,
                "--export", "type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,addr.path=" + socket + ",writable=on,num-queues=1")
                .redirectErrorStream(true).redirectOutput(dir.resolve("qsd.log").toFile()).start();
        Await.await(() -> {
            assertTrue(qsd.isAlive(), () -> "qemu-storage-daemon exited: " + log());
            return Await.listening(socket);
        }, Duration.ofSeconds(20), () -> "qemu-storage-daemon did not listen on its socket");
    }

    private String log() {
        try {
            return Files.readString(dir.resolve("qsd.log"));
        } catch (Exception e) {
            return e.toString();
        }
    }

    @AfterEach
    void stopDaemon() throws Exception {
        if (qsd != null) {
            qsd.destroy();
            if (!qsd.waitFor(10, TimeUnit.SECONDS)) {
                qsd.destroyForcibly();
            }
        }
    }

    @Test
    void negotiatesReadsConfigAndDoesBlockIo() throws Exception {
        try (FrontendRig rig = new FrontendRig(socket)) {
            long offered = rig.fe.getFeatures();
            assertTrue(VirtioFeatures.has(offered, VirtioFeatures.VERSION_1), "offered 0x" + Long.toHexString(offered));
            long wanted = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.EVENT_IDX, VirtioFeatures.INDIRECT_DESC,
                    BLK_FLUSH, BLK_SEG_MAX, BLK_BLK_SIZE);
            rig.features = rig.fe.negotiate(wanted, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES);
            assertTrue(VirtioFeatures.has(rig.features, BLK_FLUSH));
            // virtio_blk_config.capacity: le64 at offset 0, in 512-byte sectors
            byte[] cfg = rig.fe.getConfig(0, 24);
            long capacity = java.nio.ByteBuffer.wrap(cfg).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(0);
            assertEquals(IMAGE_SIZE / 512, capacity);
            assertTrue(rig.fe.getQueueNum() >= 1);

            rig.fe.setMemTable(rig.memory);
            org.jvirtio.ring.QueueDriver q = rig.queue(0, 128);
            GuestMemory m = rig.memory;
            byte[] pattern = new byte[4096];
            for (int i = 0; i < pattern.length; i++) {
                pattern[i] = (byte) (i * 31 + 7);
            }
            m.write(BUF, MemorySegment.ofArray(pattern));
            assertEquals(0, request(rig, q, 1 /* OUT */, 8, 4096, false), "write status");
            assertEquals(0, request(rig, q, 4 /* FLUSH */, 0, 0, false), "flush status");
            m.write(BUF, MemorySegment.ofArray(new byte[4096]));
            assertEquals(0, request(rig, q, 0 /* IN */, 8, 4096, true), "read status");
            byte[] back = new byte[4096];
            m.read(BUF, MemorySegment.ofArray(back));
            assertArrayEquals(pattern, back);
            // and it is really on the disk image, at sector 8
            byte[] onDisk = new byte[4096];
            try (var f = new java.io.RandomAccessFile(image.toFile(), "r")) {
                f.seek(8 * 512);
                f.readFully(onDisk);
            }
            assertArrayEquals(pattern, onDisk);
            // read past the end: the device answers IOERR (1)
            assertEquals(1, request(rig, q, 0, IMAGE_SIZE / 512, 4096, true));
            assertEquals(4, rig.fe.getVringBase(0), "four requests consumed");
        }
    }

    /** One virtio-blk request: header, optional data, status; returns the status byte. */
    private static int request(FrontendRig rig, org.jvirtio.ring.QueueDriver q, int type, long sector, int len, boolean deviceWrites) throws Exception {
        GuestMemory m = rig.memory;
        m.writeU32(HDR, type);
        m.writeU32(HDR + 4, 0);
        m.writeU64(HDR + 8, sector);
        m.writeU8(STATUS, 0xff);
        List<Long> addrs = len == 0 ? List.of(HDR, STATUS) : List.of(HDR, BUF, STATUS);
        long[] a = addrs.stream().mapToLong(Long::longValue).toArray();
        int[] l = len == 0 ? new int[] {16, 1} : new int[] {16, len, 1};
        int readable = len == 0 ? 1 : (deviceWrites ? 1 : 2);
        assertTrue(q.add(a, l, a.length, readable, type) >= 0);
        if (q.publish()) {
            rig.kicks.get(0).signal();
        }
        long deadline = System.nanoTime() + 20_000_000_000L;
        int[] got = {0};
        while (got[0] == 0) {
            q.pollUsed((h, t, n) -> got[0]++);
            if (got[0] == 0) {
                assertTrue(System.nanoTime() < deadline, "no completion from qemu-storage-daemon");
                rig.calls.get(0).await(100);
            }
        }
        return m.readU8(STATUS);
    }
}
