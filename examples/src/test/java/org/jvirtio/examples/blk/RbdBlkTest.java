package org.jvirtio.examples.blk;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

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
            VhostUserBlkEndToEndTest.onEachQueue(2, q -> VhostUserBlkEndToEndTest.randomIo(c, q, shadow, q * (disk / 2), disk / 2, 60));
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
                for (int t = 1; t < 5; t++) {
                    c.submit(t, t % 2 == 0 ? VirtioBlk.T_IN : VirtioBlk.T_OUT, 128L * t, 4096);
                }
                c.flushSubmissions();
                int[] statuses = new int[8];
                Arrays.fill(statuses, -1);
                int got = 0;
                while (got < 4) {
                    int n = c.reap((tag, st, nanos) -> statuses[tag] = st, 30_000);
                    assertTrue(n > 0, "requests hang on a frozen OSD");
                    got += n;
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

    /**
     * Random 4 KiB writes and reads at depth 8, and the OSD frozen for twice the op timeout in the
     * middle of it, then running again, and the load goes on. Every request completes (OK or
     * IOERR, never a hang); every read that succeeds returns what the block may hold; and at the
     * end every block holds its last write that succeeded, or a write after it that failed (an
     * operation that timed out on the client may still have reached the OSD): nothing that
     * completed is lost.
     */
    @Test
    void anOsdFrozenUnderLoadLosesNothingThatCompleted() throws Exception {
        cluster.createImage("rbd/load", "4M");
        int blocks = (4 << 20) / 4096;
        int depth = 8;
        long[] lastOk = new long[blocks]; // version of the last write that succeeded (0: zeros)
        java.util.List<java.util.Set<Long>> maybe = new java.util.ArrayList<>();
        for (int b = 0; b < blocks; b++) {
            maybe.add(new java.util.HashSet<>());
        }
        int[] blockOf = new int[depth];
        long[] versionOf = new long[depth]; // 0: a read
        java.util.BitSet busy = new java.util.BitSet();
        Random rnd = new Random(11);
        long[] next = {1};
        int[] ok = new int[1];
        int[] failed = new int[1];
        try (var backend = start("rbd/load", "--rbd-timeout", "2");
             BlkClient c = new BlkClient(sock("rbd/load"), depth, 4096)) {
            java.util.function.IntConsumer issue = tag -> {
                int b;
                do {
                    b = rnd.nextInt(blocks);
                } while (busy.get(b));
                busy.set(b);
                blockOf[tag] = b;
                if (rnd.nextBoolean()) {
                    long v = next[0]++;
                    versionOf[tag] = v;
                    c.put(tag, pattern(b, v));
                    c.submit(tag, VirtioBlk.T_OUT, b * 8L, 4096);
                } else {
                    versionOf[tag] = 0;
                    c.submit(tag, VirtioBlk.T_IN, b * 8L, 4096);
                }
            };
            BlkClient.Completion done = (tag, st, nanos) -> {
                int b = blockOf[tag];
                busy.clear(b);
                if (st == VirtioBlk.S_OK) {
                    ok[0]++;
                    if (versionOf[tag] != 0) {
                        lastOk[b] = versionOf[tag];
                        maybe.get(b).clear();
                    } else {
                        byte[] got = c.get(tag, 4096);
                        assertTrue(holds(got, b, lastOk[b], maybe.get(b)), "block " + b + " read something never written to it");
                    }
                } else {
                    assertEquals(VirtioBlk.S_IOERR, st);
                    failed[0]++;
                    if (versionOf[tag] != 0) {
                        maybe.get(b).add(versionOf[tag]);
                    }
                }
            };
            for (int t = 0; t < depth; t++) {
                issue.accept(t);
            }
            c.flushSubmissions();
            long t0 = System.nanoTime();
            boolean frozen = false;
            boolean thawed = false;
            try {
                while (System.nanoTime() - t0 < 9_000_000_000L) {
                    long ms = (System.nanoTime() - t0) / 1_000_000;
                    if (!frozen && ms > 1500) {
                        cluster.stopOsd();
                        frozen = true;
                    }
                    if (frozen && !thawed && ms > 5500) {
                        cluster.continueOsd();
                        thawed = true;
                    }
                    int[] reaped = new int[depth + 1];
                    int n = c.reap((tag, st, nanos) -> {
                        done.done(tag, st, nanos);
                        reaped[0]++;
                        reaped[reaped[0]] = tag;
                    }, 10_000);
                    assertTrue(n > 0, "no request completed within 10 s: the backend hangs on a frozen OSD");
                    for (int i = 1; i <= reaped[0]; i++) {
                        issue.accept(reaped[i]);
                    }
                    c.flushSubmissions();
                }
            } finally {
                if (frozen && !thawed) {
                    cluster.continueOsd();
                }
            }
            int left = depth;
            while (left > 0) {
                left -= c.reap(done, 30_000);
            }
            assertTrue(failed[0] >= 1, "requests failed while the OSD was frozen: " + failed[0]);
            assertTrue(ok[0] > 100, "requests succeeded: " + ok[0]);
            assertEquals(0, backend.device().stats(0).inFlight());
        }
        // Ceph's own tool reads the image: every block holds what the last successful write put
        // there, or a later write that failed on the client.
        byte[] image = export("rbd/load");
        for (int b = 0; b < blocks; b++) {
            assertTrue(holds(Arrays.copyOfRange(image, b * 4096, b * 4096 + 4096), b, lastOk[b], maybe.get(b)),
                    "block " + b + " lost its last completed write (version " + lastOk[b] + ")");
        }
        System.out.println("RbdBlkTest: under load with the OSD frozen 4 s: " + ok[0] + " requests OK, " + failed[0] + " IOERR");
    }

    /** 4 KiB unique to (block, version); version 0 is the zeros of a new image. */
    private static byte[] pattern(int block, long version) {
        byte[] d = new byte[4096];
        if (version != 0) {
            new Random(block * 1_000_003L + version).nextBytes(d);
        }
        return d;
    }

    private static boolean holds(byte[] got, int block, long lastOk, java.util.Set<Long> maybe) {
        if (Arrays.equals(got, pattern(block, lastOk))) {
            return true;
        }
        for (long v : maybe) {
            if (Arrays.equals(got, pattern(block, v))) {
                return true;
            }
        }
        return false;
    }

    /**
     * The front-end goes away while the OSD is frozen: the backend gives up draining the queue
     * after --drain-timeout and abandons it with its read still at the OSD. A new front-end
     * connects before that read ends: its queue opens beside the abandoned one (which now routes
     * the new one's completions), it is served once the OSD runs again, and the abandoned read
     * completes into nowhere.
     */
    @Test
    void aNewFrontEndIsServedWhileAnAbandonedQueuesReadStillWaits() throws Exception {
        cluster.createImage("rbd/abandon", "4M");
        byte[] data = new byte[4096];
        new Random(5).nextBytes(data);
        try (var backend = start("rbd/abandon", "--rbd-timeout", "30", "--drain-timeout", "1")) {
            BlkClient first = new BlkClient(sock("rbd/abandon"), 4, 4096);
            first.put(0, data);
            assertEquals(VirtioBlk.S_OK, status(first, 0, VirtioBlk.T_OUT, 8, 4096));
            cluster.stopOsd();
            try {
                first.submit(1, VirtioBlk.T_IN, 8, 4096);
                first.flushSubmissions();
                Thread.sleep(300);
                first.close();
                Thread.sleep(2000); // past the drain limit: the queue is abandoned, its read still waits
                try (BlkClient second = new BlkClient(sock("rbd/abandon"), 4, 4096)) {
                    second.submit(0, VirtioBlk.T_IN, 8, 4096);
                    second.flushSubmissions();
                    Thread.sleep(300);
                    cluster.continueOsd();
                    int[] st = {-1};
                    assertEquals(1, second.reap((t, s, n) -> st[0] = s, 20_000), "the new front-end's read did not complete");
                    assertEquals(VirtioBlk.S_OK, st[0]);
                    assertArrayEquals(data, second.get(0, 4096));
                    second.put(1, data);
                    assertEquals(VirtioBlk.S_OK, status(second, 1, VirtioBlk.T_OUT, 16, 4096));
                }
            } finally {
                cluster.continueOsd();
            }
        }
    }

    @Test
    void aReadOnlyRbdDiskRefusesWrites() throws Exception {
        cluster.createImage("rbd/ro", "4M");
        try (var backend = start("rbd/ro", "--read-only");
             BlkClient c = new BlkClient(sock("rbd/ro"), 2, 4096)) {
            assertTrue(org.jvirtio.api.VirtioFeatures.has(c.features(), VirtioBlk.BLK_RO));
            assertEquals(VirtioBlk.S_IOERR, status(c, 0, VirtioBlk.T_OUT, 0, 4096));
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_IN, 0, 4096));
        }
    }

    /**
     * {@code --ceph-options rbd_cache=true,rbd_cache_policy=writeback}: librbd's write-back cache
     * (qemu-storage-daemon's {@code cache.direct=off}). Once the guest has flushed (librbd writes
     * through until then), a write completes from the cache while no OSD answers; a flush waits
     * for the OSD, and then the cluster holds the data.
     */
    @Test
    void withTheWriteBackCacheAWriteCompletesFromTheCacheAndAFlushPutsItOnTheCluster() throws Exception {
        cluster.createImage("rbd/cached", "4M");
        byte[] data = new byte[4096];
        new Random(11).nextBytes(data);
        try (var backend = start("rbd/cached", "--ceph-options", "rbd_cache=true,rbd_cache_policy=writeback");
             BlkClient c = new BlkClient(sock("rbd/cached"), 4, 4096)) {
            c.put(0, new byte[4096]);
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 16, 4096)); // takes the image's lock while the OSD answers
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_FLUSH, 0, 0));
            cluster.stopOsd();
            int[] st = {-1};
            try {
                c.put(2, data);
                assertEquals(VirtioBlk.S_OK, status(c, 2, VirtioBlk.T_OUT, 16, 4096), "a write completes from the cache while no OSD answers");
                c.submit(3, VirtioBlk.T_FLUSH, 0, 0);
                c.flushSubmissions();
                assertThrows(java.io.IOException.class, () -> c.reap((t, s, n) -> st[0] = s, 2000), "a flush waits for the OSD");
            } finally {
                cluster.continueOsd();
            }
            assertEquals(1, c.reap((t, s, n) -> st[0] = s, 30_000), "the flush completes once the OSD is back");
            assertEquals(VirtioBlk.S_OK, st[0]);
            assertArrayEquals(data, Arrays.copyOfRange(export("rbd/cached"), 16 * 512, 16 * 512 + 4096), "on the cluster after the flush");
        }
    }

    /** {@code --rbd POOL/IMAGE@SNAPSHOT}: the snapshot's data, read-only whether or not --read-only was given. */
    @Test
    void aSnapshotIsServedReadOnlyWithTheDataOfItsTime() throws Exception {
        cluster.createImage("rbd/snapped", "4M");
        byte[] then = new byte[4096];
        Arrays.fill(then, (byte) 0x11);
        byte[] now = new byte[4096];
        Arrays.fill(now, (byte) 0x22);
        writeAndFlush("rbd/snapped", then);
        cluster.rbd("snap", "create", "rbd/snapped@s1");
        writeAndFlush("rbd/snapped", now);
        try (var backend = start("rbd/snapped@s1");
             BlkClient c = new BlkClient(sock("rbd/snapped@s1"), 2, 4096)) {
            assertTrue(org.jvirtio.api.VirtioFeatures.has(c.features(), VirtioBlk.BLK_RO), "a snapshot is offered read-only");
            assertEquals((4 << 20) / 512, c.capacitySectors());
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_IN, 8, 4096));
            assertArrayEquals(then, c.get(0, 4096), "the data of the snapshot's time");
            c.put(1, now);
            assertEquals(VirtioBlk.S_IOERR, status(c, 1, VirtioBlk.T_OUT, 8, 4096));
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_IN, 8, 4096));
            assertArrayEquals(then, c.get(0, 4096));
        }
        assertArrayEquals(now, Arrays.copyOfRange(export("rbd/snapped"), 8 * 512, 8 * 512 + 4096), "the image itself moved on");
        assertArrayEquals(then, Arrays.copyOfRange(export("rbd/snapped@s1"), 8 * 512, 8 * 512 + 4096));
    }

    private void writeAndFlush(String image, byte[] data) throws Exception {
        try (var backend = start(image);
             BlkClient c = new BlkClient(sock(image), 2, data.length)) {
            c.put(0, data);
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 8, data.length));
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_FLUSH, 0, 0));
        }
    }

    /** {@code bin/vhost-user blk --rbd IMAGE} as a process of its own (to be killed), logging to {@code log}. */
    private Process startProcess(String image, Path socket, Path log, String... more) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), "org.jvirtio.runner.VhostUserRunner",
                "blk", "--socket", socket.toString(), "--rbd", image, "--ceph-conf", cluster.conf().toString()));
        cmd.addAll(List.of(more));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!Files.exists(socket)) {
            assertTrue(p.isAlive(), "the backend exited: " + Files.readString(log));
            assertTrue(System.nanoTime() < deadline, "the backend never listened: " + Files.readString(log));
            Thread.sleep(50);
        }
        return p;
    }

    private static List<Path> records(Path lockDir) throws Exception {
        try (var s = Files.walk(lockDir)) {
            return s.filter(Files::isRegularFile).toList();
        }
    }

    /**
     * A backend killed while it holds the image's exclusive lock: the OSD keeps its client's watch
     * for its {@code osd_client_watch_timeout} (set to 300 s here; 30 s by default), during which
     * librbd in a new backend could not take the lock. The new backend finds the killed one's record in the
     * lock directory, sees its process gone, breaks the lock its client holds, and the first write
     * completes at once (well inside the 300 s). The dead record is removed; the new one's is left.
     */
    @Test
    void aBackendRestartedAfterACrashTakesTheLockOfItsDeadPredecessorAtOnce() throws Exception {
        cluster.createImage("rbd/crash", "4M");
        Path locks = dir.resolve("locks");
        Path socket = sock("rbd/crash");
        byte[] before = new byte[4096];
        new Random(21).nextBytes(before);
        cluster.ceph("tell", "osd.0", "config", "set", "osd_client_watch_timeout", "300"); // read when a watch is set up
        try {
            crashAndRestart(locks, socket, before);
        } finally {
            cluster.ceph("tell", "osd.0", "config", "set", "osd_client_watch_timeout", "30");
        }
    }

    private void crashAndRestart(Path locks, Path socket, byte[] before) throws Exception {
        Process first = startProcess("rbd/crash", socket, dir.resolve("first.log"), "--rbd-lock-dir", locks.toString());
        try (BlkClient c = new BlkClient(socket, 2, 4096)) {
            c.put(0, before);
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 0, 4096)); // the first backend's client takes the lock
            assertEquals(1, records(locks).size(), "the running backend recorded its client");
        } finally {
            first.destroyForcibly(); // SIGKILL: the lock stays with the dead client
            assertTrue(first.waitFor(30, TimeUnit.SECONDS));
        }
        Files.deleteIfExists(socket);
        byte[] after = new byte[4096];
        new Random(22).nextBytes(after);
        try (var second = start("rbd/crash", "--rbd-lock-dir", locks.toString());
             BlkClient c = new BlkClient(socket, 2, 4096)) {
            c.put(1, after);
            c.submit(1, VirtioBlk.T_OUT, 8, 4096);
            c.flushSubmissions();
            int[] st = {-1};
            assertEquals(1, c.reap((t, s, n) -> st[0] = s, 60_000), "the write waited for the dead client's watch to time out");
            assertEquals(VirtioBlk.S_OK, st[0]);
            List<Path> left = records(locks);
            assertEquals(1, left.size(), left.toString());
            assertTrue(left.get(0).getFileName().toString().startsWith(ProcessHandle.current().pid() + "-"), "only this backend's record is left");
        }
        assertEquals(List.of(), records(locks), "a clean stop removes the record");
        byte[] disk = export("rbd/crash");
        assertArrayEquals(before, Arrays.copyOfRange(disk, 0, 4096));
        assertArrayEquals(after, Arrays.copyOfRange(disk, 8 * 512, 8 * 512 + 4096));
    }

    /**
     * A second backend on the image while the first lives (a live migration's destination on the
     * same host): the first's record names a process that runs, so nothing is broken and the first
     * backend's client is not blocklisted: its writes go on (blocklisted, they would fail).
     */
    @Test
    void aLiveBackendsLockIsNeverBroken() throws Exception {
        cluster.createImage("rbd/live", "4M");
        Path locks = dir.resolve("locks");
        Path socket = dir.resolve("live-first.sock");
        Process first = startProcess("rbd/live", socket, dir.resolve("first.log"), "--rbd-lock-dir", locks.toString());
        try (BlkClient c = new BlkClient(socket, 2, 4096)) {
            c.put(0, new byte[4096]);
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 0, 4096)); // the first backend holds the lock
            try (var second = start("rbd/live", "--rbd-lock-dir", locks.toString())) {
                byte[] data = new byte[4096];
                new Random(23).nextBytes(data);
                c.put(1, data);
                assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_OUT, 8, 4096), "the live backend was fenced off");
                assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_FLUSH, 0, 0));
                assertArrayEquals(data, Arrays.copyOfRange(export("rbd/live"), 8 * 512, 8 * 512 + 4096));
                assertEquals(2, records(locks).size(), "both backends' records are kept");
            }
        } finally {
            first.destroyForcibly();
            assertTrue(first.waitFor(30, TimeUnit.SECONDS));
        }
    }

    @Test
    void badRbdStartsAreOneLineAndListenOnNothing() throws Exception {
        Path unreachable = dir.resolve("nowhere.conf");
        Files.writeString(unreachable, Files.readString(cluster.conf()).replaceAll("mon host = .*", "mon host = v2:127.0.0.1:1"));
        String sock = dir.resolve("x.sock").toString();
        String conf = cluster.conf().toString();
        cluster.createImage("rbd/lockdir", "4M");
        Path openDir = Files.createDirectory(dir.resolve("open-to-all"));
        Files.setPosixFilePermissions(openDir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
        String[][] cases = {
            {"--socket", sock, "--rbd", "rbd/does-not-exist", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "nopool/img", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/a/b/c", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/img@snap", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/img@", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/img@a@b", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd@a/img", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", dir.resolve("none.conf").toString()},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--ceph-user", "nobody"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", unreachable.toString(), "--rbd-timeout", "2"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--rbd-timeout", "0"},
            {"--socket", sock, "--ram", "1M", "--ceph-conf", conf},
            {"--socket", sock, "--rbd", "rbd/img", "--image", "/dev/null"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--ceph-options", "no_such_setting=1"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--ceph-options", "rbd_cache"},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--ceph-options", "rbd_cache=false,rbd_cache=true"},
            {"--socket", sock, "--ram", "1M", "--rbd-lock-dir", dir.toString()},
            {"--socket", sock, "--rbd", "rbd/img", "--ceph-conf", conf, "--rbd-lock-dir", ""},
            {"--socket", sock, "--rbd", "rbd/lockdir", "--ceph-conf", conf, "--rbd-lock-dir", openDir.toString()},
        };
        for (String[] args : cases) {
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            assertEquals(2, VhostUserBlkCommand.run(args, new PrintStream(new ByteArrayOutputStream(), true), new PrintStream(err, true)),
                    String.join(" ", args));
            assertEquals(1, err.toString().strip().lines().count(), "one line: " + err);
            assertFalse(Files.exists(dir.resolve("x.sock")), "nothing listens after a refused start");
        }
    }
}
