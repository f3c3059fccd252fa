package org.jvirtio.examples.blk;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.testkit.CephCluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.jvirtio.examples.blk.VhostUserBlkEndToEndTest.segments;
import static org.jvirtio.examples.blk.VhostUserBlkEndToEndTest.status;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code bin/vhost-user blk --rbd POOL/IMAGE} on a real single-node Ceph cluster (one mon, one
 * memstore OSD, cephx; started for this class by bin/ceph-cluster), driven by the Java front-end
 * over a real socket: what is written is on the cluster ({@code rbd export}), what the cluster
 * holds is what is read, on one queue and on two; resizes done with {@code rbd resize} reach the
 * front-end; a frozen OSD fails requests after the op timeout and the disk works again once it
 * is back; bad starts are one line.
 */
class RbdBlkTest {
    @TempDir
    static Path shared;
    static CephCluster cluster;

    @TempDir
    Path dir;

    @BeforeAll
    static void startCluster() throws Exception {
        String missing = CephCluster.missing();
        assumeTrue(missing == null, missing);
        cluster = CephCluster.start(shared.resolve("ceph"));
    }

    @AfterAll
    static void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    private VhostUserBlkCommand.Running start(String image, String... more) throws Exception {
        String[] base = {"--socket", dir.resolve(image.replace('/', '_') + ".sock").toString(), "--rbd", image,
                "--ceph-conf", cluster.conf().toString()};
        String[] args = Arrays.copyOf(base, base.length + more.length);
        System.arraycopy(more, 0, args, base.length, more.length);
        return VhostUserBlkCommand.start(args);
    }

    private Path sock(String image) {
        return dir.resolve(image.replace('/', '_') + ".sock");
    }

    private byte[] export(String image) throws Exception {
        Path out = dir.resolve("export-" + System.nanoTime());
        cluster.rbd("export", image, out.toString());
        return Files.readAllBytes(out);
    }

    @Test
    void writeFlushReadWriteZeroesAndDiscardOnTheCluster() throws Exception {
        cluster.createImage("rbd/one", "16M");
        byte[] data = new byte[65536];
        new Random(1).nextBytes(data);
        try (var backend = start("rbd/one");
             BlkClient c = new BlkClient(sock("rbd/one"), 8, 65536)) {
            assertEquals((16 << 20) / 512, c.capacitySectors());
            assertTrue(org.jvirtio.api.VirtioFeatures.has(c.features(), VirtioBlk.BLK_WRITE_ZEROES));
            assertTrue(org.jvirtio.api.VirtioFeatures.has(c.features(), VirtioBlk.BLK_DISCARD));
            c.put(0, data);
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 2048, 65536));
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_FLUSH, 0, 0));
            c.put(1, new byte[65536]);
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_IN, 2048, 65536));
            assertArrayEquals(data, c.get(1, 65536));
            // the cluster holds it (read by Ceph's own tool, not through us)
            byte[] onCluster = export("rbd/one");
            assertArrayEquals(data, Arrays.copyOfRange(onCluster, 2048 * 512, 2048 * 512 + 65536));
            // write-zeroes without unmap over the first half, with unmap over the second, in one request
            c.put(2, segments(new long[] {2048, 64, 0}, new long[] {2112, 64, VirtioBlk.DWZ_F_UNMAP}));
            assertEquals(VirtioBlk.S_OK, status(c, 2, VirtioBlk.T_WRITE_ZEROES, 0, 32));
            c.put(3, data);
            assertEquals(VirtioBlk.S_OK, status(c, 3, VirtioBlk.T_IN, 2048, 65536));
            assertArrayEquals(new byte[65536], c.get(3, 65536));
            // a whole object (4 MiB) discarded reads as zeros afterwards
            byte[] mib = new byte[65536];
            Arrays.fill(mib, (byte) 0x77);
            for (int i = 0; i < 64; i++) {
                c.put(4, mib);
                assertEquals(VirtioBlk.S_OK, status(c, 4, VirtioBlk.T_OUT, 8192 + 128L * i, 65536));
            }
            c.put(5, segments(new long[] {8192, 8192, 0}));
            assertEquals(VirtioBlk.S_OK, status(c, 5, VirtioBlk.T_DISCARD, 0, 16));
            c.put(6, mib);
            assertEquals(VirtioBlk.S_OK, status(c, 6, VirtioBlk.T_IN, 8192 + 128, 65536));
            assertArrayEquals(new byte[65536], c.get(6, 65536));
            // past the end: IOERR, and the disk goes on
            assertEquals(VirtioBlk.S_IOERR, status(c, 7, VirtioBlk.T_IN, (16 << 20) / 512, 4096));
            assertEquals(VirtioBlk.S_OK, status(c, 7, VirtioBlk.T_IN, 0, 4096));
            assertEquals(0, backend.device().stats(0).inFlight());
        }
        byte[] onCluster = export("rbd/one");
        assertArrayEquals(new byte[65536], Arrays.copyOfRange(onCluster, 2048 * 512, 2048 * 512 + 65536));
        byte[] mine = new byte[(16 << 20) - 8192 * 512];
        assertArrayEquals(new byte[4 << 20], Arrays.copyOfRange(onCluster, 8192 * 512, 8192 * 512 + (4 << 20)));
        assertEquals(16 << 20, onCluster.length, mine.length + " bytes after the discarded object");
    }

    /** Two queues on two I/O threads share one image handle; a collecting thread routes each completion to its queue. */
    @Test
    void twoQueuesRandomMixedSizesVerifiedAgainstTheCluster() throws Exception {
        int disk = 16 << 20;
        cluster.createImage("rbd/two", "16M");
        byte[] shadow = new byte[disk];
        try (var backend = start("rbd/two", "--queues", "2", "--iothreads", "2");
             BlkClient c = new BlkClient(sock("rbd/two"), 16, 128 << 10, 2, false, false)) {
            Thread[] threads = new Thread[2];
            Throwable[] failed = new Throwable[1];
            for (int q = 0; q < 2; q++) {
                int qq = q;
                threads[q] = Thread.ofPlatform().start(() -> {
                    try {
                        VhostUserBlkEndToEndTest.randomIo(c, qq, shadow, qq * (disk / 2), disk / 2, 60);
                    } catch (Throwable e) {
                        failed[0] = e;
                    }
                });
            }
            for (Thread t : threads) {
                t.join();
            }
            if (failed[0] != null) {
                throw new AssertionError(failed[0]);
            }
            for (int q = 0; q < 2; q++) {
                assertTrue(backend.device().stats(q).requests() >= 60, "queue " + q);
                assertEquals(0, backend.device().stats(q).errors());
            }
        }
        assertArrayEquals(shadow, export("rbd/two"));
    }

    /** An image grown with {@code rbd resize} elsewhere: the front-end gets a config change and the new capacity. */
    @Test
    void aResizeElsewhereReachesTheFrontEnd() throws Exception {
        cluster.createImage("rbd/grow", "8M");
        try (var backend = start("rbd/grow");
             BlkClient c = new BlkClient(sock("rbd/grow"), 4, 4096)) {
            c.frontend().openBackendChannel();
            cluster.rbd("resize", "--size", "24M", "rbd/grow");
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (c.frontend().configChanges() == 0) {
                assertTrue(System.nanoTime() < deadline, "no config change after the resize");
                Thread.sleep(50);
            }
            byte[] cfg = c.frontend().getConfig(0, VirtioBlk.CONFIG_SIZE);
            assertEquals((24 << 20) / 512, ByteBuffer.wrap(cfg).order(ByteOrder.LITTLE_ENDIAN).getLong(VirtioBlk.CFG_CAPACITY));
            // the new end is usable
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_IN, (24 << 20) / 512 - 8, 4096));
        }
    }

    /**
     * The OSD frozen (SIGSTOP) with requests in flight: they fail with IOERR after the op timeout
     * (2 s here) instead of hanging, the backend stays up, and once the OSD runs again the same
     * connection reads back what was written before.
     */
    @Test
    void aFrozenOsdFailsRequestsAfterTheTimeoutAndTheDiskComesBack() throws Exception {
        cluster.createImage("rbd/frozen", "8M");
        byte[] data = new byte[4096];
        new Random(7).nextBytes(data);
        try (var backend = start("rbd/frozen", "--rbd-timeout", "2");
             BlkClient c = new BlkClient(sock("rbd/frozen"), 8, 4096)) {
            c.put(0, data);
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 64, 4096));
            cluster.stopOsd();
            try {
                long t0 = System.nanoTime();
                for (int t = 1; t < 5; t++) {
                    c.submit(t, t % 2 == 0 ? VirtioBlk.T_IN : VirtioBlk.T_OUT, 128L * t, 4096);
                }
                c.flushSubmissions();
                int[] statuses = new int[8];
                Arrays.fill(statuses, -1);
                int got = 0;
                while (got < 4) {
                    got += c.reap((tag, st, n) -> statuses[tag] = st, 30_000);
                    assertTrue(System.nanoTime() - t0 < 30_000_000_000L, "requests hang on a frozen OSD");
                }
                for (int t = 1; t < 5; t++) {
                    assertEquals(VirtioBlk.S_IOERR, statuses[t], "request " + t);
                }
            } finally {
                cluster.continueOsd();
            }
            // The OSD is back: the disk works again, with what was written before the freeze.
            c.put(5, new byte[4096]);
            long deadline = System.nanoTime() + 30_000_000_000L;
            int st;
            while ((st = status(c, 5, VirtioBlk.T_IN, 64, 4096)) != VirtioBlk.S_OK) {
                assertTrue(System.nanoTime() < deadline, "the disk did not come back: status " + st);
                Thread.sleep(200);
            }
            assertArrayEquals(data, c.get(5, 4096));
            assertTrue(backend.device().stats(0).errors() >= 4);
        }
    }

    @Test
    void badRbdStartsAreOneLineAndListenOnNothing() throws Exception {
        Path unreachable = dir.resolve("nowhere.conf");
        Files.writeString(unreachable, Files.readString(cluster.conf()).replaceAll("mon host = .*", "mon host = v2:127.0.0.1:1"));
        String sock = dir.resolve("x.sock").toString();
        String conf = cluster.conf().toString();
        String[][] cases = {
            {"--socket", sock, "--rbd", "rbd/does-not-exist", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "nopool/img", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/a/b/c", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/img@snap", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", dir.resolve("none.conf").toString()},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--ceph-user", "nobody"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", unreachable.toString(), "--rbd-timeout", "2"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--rbd-timeout", "0"},
            {"--socket", sock, "--ram", "1M", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/img", "--image", "/dev/null"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--ceph-options", "no_such_setting=1"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--ceph-options", "rbd_cache"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--ceph-options", "rbd_cache=false,rbd_cache=true"},
        };
        for (String[] args : cases) {
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            long t0 = System.nanoTime();
            assertEquals(2, VhostUserBlkCommand.run(args, new PrintStream(new ByteArrayOutputStream(), true), new PrintStream(err, true)),
                    String.join(" ", args));
            assertEquals(1, err.toString().strip().lines().count(), "one line: " + err);
            assertTrue(System.nanoTime() - t0 < 20_000_000_000L, "gave up within the timeout: " + String.join(" ", args));
            assertFalse(Files.exists(dir.resolve("x.sock")), "nothing listens after a refused start");
        }
    }
}
