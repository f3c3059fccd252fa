package org.jvirtio.examples.blk;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import org.jvirtio.blk.VirtioBlk;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import static org.junit.jupiter.api.Assertions.*;

/** The vhost-user-blk example driven by the Java front-end over a real socket. */
class VhostUserBlkEndToEndTest {
    @TempDir
    Path dir;

    private VhostUserBlkCommand.Running start(String... args) throws Exception {
        return VhostUserBlkCommand.start(args);
    }

    static int status(BlkClient c, int tag, int type, long sector, int bytes) throws Exception {
        c.submit(tag, type, sector, bytes);
        c.flushSubmissions();
        int[] st = {-1};
        c.reap((t, s, n) -> st[0] = s, 10_000);
        return st[0];
    }

    @Test
    void imageWriteReadVerifyFlushDiscardAndGetId() throws Exception {
        Path img = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16 << 20);
        }
        Path sock = dir.resolve("blk.sock");
        try (var backend = start("--socket", sock.toString(), "--image", img.toString(), "--serial", "e2e-serial");
             BlkClient c = new BlkClient(sock, 8, 65536)) {
            assertEquals((16 << 20) / 512, c.capacitySectors());
            byte[] data = new byte[65536];
            new java.util.Random(1).nextBytes(data);
            c.put(0, data);
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 2048, 65536));
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_FLUSH, 0, 0));
            c.put(1, new byte[65536]);
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_IN, 2048, 65536));
            assertArrayEquals(data, c.get(1, 65536));
            byte[] onDisk = new byte[65536];
            try (var f = new java.io.RandomAccessFile(img.toFile(), "r")) {
                f.seek(2048 * 512);
                f.readFully(onDisk);
            }
            assertArrayEquals(data, onDisk);
            assertEquals(VirtioBlk.S_OK, status(c, 2, VirtioBlk.T_GET_ID, 0, 512));
            assertEquals("e2e-serial", new String(c.get(2, 10), StandardCharsets.US_ASCII));
            assertEquals(VirtioBlk.S_IOERR, status(c, 3, VirtioBlk.T_IN, (16 << 20) / 512, 4096));
            assertEquals(VirtioBlk.S_UNSUPP, status(c, 4, 77, 0, 0));
            assertTrue(backend.device().stats(0).requests() >= 6);
        }
    }

    /**
     * Random writes and reads of mixed sizes (512 B to 128 KiB) split into up to 64 buffers, on
     * four queues spread over two I/O threads at once, through io_uring on a real image; then
     * FLUSH, and the image holds exactly what was written. Split and packed rings.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "poll-us {0} packed {1}")
    @org.junit.jupiter.params.provider.CsvSource({"0, false", "50, false", "0, true", "50, true"})
    void multiqueueRandomMixedSizesManySegmentsVerified(int pollUs, boolean packed) throws Exception {
        int queues = 4;
        int disk = 32 << 20;
        Path img = dir.resolve("mq.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(disk);
        }
        Path sock = dir.resolve("mq.sock");
        byte[] shadow = new byte[disk];
        try (var backend = start("--socket", sock.toString(), "--image", img.toString(), "--queues", "4", "--iothreads", "2",
                "--poll-us", Integer.toString(pollUs));
             BlkClient c = new BlkClient(sock, 16, 128 << 10, queues, false, packed)) {
            assertEquals(packed, org.jvirtio.api.VirtioFeatures.has(c.features(), org.jvirtio.api.VirtioFeatures.RING_PACKED));
            onEachQueue(queues, q -> randomIo(c, q, shadow, q * (disk / queues), disk / queues, 300));
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_FLUSH, 0, 0));
            for (int q = 0; q < queues; q++) {
                assertTrue(backend.device().stats(q).requests() >= 300, "queue " + q);
                assertEquals(0, backend.device().stats(q).errors());
                assertEquals(0, backend.device().stats(q).inFlight());
            }
        }
        assertArrayEquals(shadow, Files.readAllBytes(img));
    }

    interface QueueJob {
        void run(int queue) throws Exception;
    }

    /** Runs {@code job} for every queue at once, each on a thread of its own; rethrows the first failure. */
    static void onEachQueue(int queues, QueueJob job) throws InterruptedException {
        Thread[] threads = new Thread[queues];
        Throwable[] failed = new Throwable[1];
        for (int q = 0; q < queues; q++) {
            int qq = q;
            threads[q] = Thread.ofPlatform().start(() -> {
                try {
                    job.run(qq);
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
    }

    /** One queue's share: a window of the disk, written and read at random with a shadow copy. */
    static void randomIo(BlkClient c, int q, byte[] shadow, int base, int span, int rounds) throws Exception {
        java.util.Random rnd = new java.util.Random(100 + q);
        for (int round = 0; round < rounds; round++) {
            int n = 1 + rnd.nextInt(c.depth());
            int[] off = new int[n];
            int[] len = new int[n];
            boolean[] write = new boolean[n];
            // disjoint ranges within a round: the device may complete them in any order
            java.util.BitSet used = new java.util.BitSet();
            for (int t = 0; t < n; t++) {
                len[t] = 512 * (1 + rnd.nextInt(256));
                off[t] = 512 * rnd.nextInt((span - len[t]) / 512);
                while (used.get(off[t] / 512, (off[t] + len[t]) / 512).cardinality() > 0) {
                    off[t] = 512 * rnd.nextInt((span - len[t]) / 512);
                }
                used.set(off[t] / 512, (off[t] + len[t]) / 512);
                write[t] = rnd.nextBoolean();
                if (write[t]) {
                    byte[] d = new byte[len[t]];
                    rnd.nextBytes(d);
                    c.put(q, t, d);
                    System.arraycopy(d, 0, shadow, base + off[t], len[t]);
                }
                // as many buffers as the 256-entry ring holds for this round (up to 64 each)
                int segs = 1 + rnd.nextInt(Math.min(BlkClient.MAX_SEGMENTS, 256 / n - 2));
                c.submit(q, t, write[t] ? VirtioBlk.T_OUT : VirtioBlk.T_IN, (base + off[t]) / 512, len[t], segs);
            }
            c.flushSubmissions(q);
            int[] left = {n};
            int[] bad = {-1};
            while (left[0] > 0) {
                c.reap(q, (tag, st, nanos) -> {
                    left[0]--;
                    if (st != VirtioBlk.S_OK) {
                        bad[0] = tag;
                    }
                }, 10_000);
            }
            assertEquals(-1, bad[0], "request failed");
            for (int t = 0; t < n; t++) {
                if (!write[t]) {
                    assertArrayEquals(Arrays.copyOfRange(shadow, base + off[t], base + off[t] + len[t]), c.get(q, t, len[t]),
                            "queue " + q + " read at " + (base + off[t]));
                }
            }
        }
    }

    @Test
    void writeZeroesAndDiscardOnAnImage() throws Exception {
        Path img = dir.resolve("z.img");
        byte[] ones = new byte[4 << 20];
        Arrays.fill(ones, (byte) 0x5a);
        Files.write(img, ones);
        Path sock = dir.resolve("z.sock");
        try (var backend = start("--socket", sock.toString(), "--image", img.toString());
             BlkClient c = new BlkClient(sock, 4, 4096)) {
            assertTrue(org.jvirtio.api.VirtioFeatures.has(c.features(), VirtioBlk.BLK_WRITE_ZEROES));
            assertTrue(org.jvirtio.api.VirtioFeatures.has(c.features(), VirtioBlk.BLK_DISCARD));
            // write-zeroes sectors [0, 256) without unmap and [512, 768) with unmap; discard [1024, 1280)
            c.put(0, segments(new long[] {0, 256, 0}, new long[] {512, 256, VirtioBlk.DWZ_F_UNMAP}));
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_WRITE_ZEROES, 0, 32));
            c.put(1, segments(new long[] {1024, 256, 0}));
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_DISCARD, 0, 16));
            // a discard with a flag the spec reserves is refused, and changes nothing
            c.put(2, segments(new long[] {2048, 8, VirtioBlk.DWZ_F_UNMAP}));
            assertEquals(VirtioBlk.S_UNSUPP, status(c, 2, VirtioBlk.T_DISCARD, 0, 16));
            // past the end: IOERR
            c.put(3, segments(new long[] {(4 << 20) / 512 - 8, 16, 0}));
            assertEquals(VirtioBlk.S_IOERR, status(c, 3, VirtioBlk.T_WRITE_ZEROES, 0, 16));
        }
        byte[] after = Files.readAllBytes(img);
        for (int i = 0; i < after.length; i++) {
            int sector = i / 512;
            boolean zero = sector < 256 || (sector >= 512 && sector < 768) || (sector >= 1024 && sector < 1280);
            if (zero != (after[i] == 0)) {
                fail("byte " + i + " is " + after[i]);
            }
        }
    }

    static byte[] segments(long[]... segs) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16 * segs.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (long[] s : segs) {
            b.putLong(s[0]).putInt((int) s[1]).putInt((int) s[2]);
        }
        return b.array();
    }

    @Test
    void statsShowRequestsBytesErrorsAndInFlightPerQueue() throws Exception {
        Path sock = dir.resolve("st.sock");
        try (var backend = start("--socket", sock.toString(), "--ram", "4M", "--queues", "2", "--stats", "1");
             BlkClient c = new BlkClient(sock, 2, 4096, 2)) {
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 0, 4096));
            assertEquals(VirtioBlk.S_IOERR, status(c, 1, VirtioBlk.T_IN, 4 << 11, 4096));
            assertEquals("stats: q0 requests=2 bytes=4096 errors=1 in-flight=0 q1 requests=0 bytes=0 errors=0 in-flight=0",
                    backend.stats());
        }
    }

    @Test
    void readOnlyDiskRefusesWrites() throws Exception {
        Path sock = dir.resolve("ro.sock");
        try (var backend = start("--socket", sock.toString(), "--ram", "4M", "--read-only");
             BlkClient c = new BlkClient(sock, 2, 4096)) {
            assertTrue(org.jvirtio.api.VirtioFeatures.has(c.features(), VirtioBlk.BLK_RO));
            assertEquals(VirtioBlk.S_IOERR, status(c, 0, VirtioBlk.T_OUT, 0, 4096));
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_IN, 0, 4096));
        }
    }

    /** The front-end vanishes with requests in flight (in io_uring for the image); the next one is served. */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"ram", "image"})
    void disconnectMidIoThenReconnect(String disk) throws Exception {
        Path sock = dir.resolve("re.sock");
        Path img = dir.resolve("re.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(64 << 20);
        }
        String[] args = disk.equals("ram") ? new String[] {"--socket", sock.toString(), "--ram", "64M"}
                : new String[] {"--socket", sock.toString(), "--image", img.toString()};
        try (var backend = start(args)) {
            for (int round = 0; round < 3; round++) {
                var gone = backend.transport().nextDisconnect();
                BlkClient first = new BlkClient(sock, 64, 128 << 10);
                for (int t = 0; t < 64; t++) {
                    first.submit(t, t % 3 == 0 ? VirtioBlk.T_FLUSH : VirtioBlk.T_OUT, t * 256L, t % 3 == 0 ? 0 : 128 << 10);
                }
                first.flushSubmissions();
                first.close(); // requests may still be in flight in the backend
                gone.get(10, java.util.concurrent.TimeUnit.SECONDS);
                assertEquals(0, backend.device().stats(0).inFlight());
            }
            try (BlkClient second = new BlkClient(sock, 4, 4096)) {
                byte[] d = new byte[4096];
                Arrays.fill(d, (byte) 5);
                second.put(0, d);
                assertEquals(VirtioBlk.S_OK, status(second, 0, VirtioBlk.T_OUT, 0, 4096));
                assertEquals(VirtioBlk.S_OK, status(second, 1, VirtioBlk.T_IN, 0, 4096));
                assertArrayEquals(d, second.get(1, 4096));
            }
        }
    }

    /**
     * {@code bin/bench --mark-file}: the file appears with "measuring" when the measured seconds
     * begin and gains "done" when they end (bench/rbd.sh reads the CPU counters at the two); a
     * file that exists already, or a directory that does not, is one line and exit 2 before any
     * connection.
     */
    @Test
    void theBenchMarksItsMeasuredSecondsAndRefusesABadMarkFile() throws Exception {
        Path sock = dir.resolve("bench.sock");
        Path mark = dir.resolve("mark");
        try (var backend = start("--socket", sock.toString(), "--ram", "16M")) {
            CommandLine ok = org.jvirtio.examples.cli.Cli.oneLineFailures("bench", new BlkBench());
            java.io.PrintStream stdout = System.out;
            java.io.ByteArrayOutputStream printed = new java.io.ByteArrayOutputStream();
            System.setOut(new java.io.PrintStream(printed, true));
            try {
                assertEquals(0, ok.execute("--socket", sock.toString(), "--depth", "4", "--seconds", "1", "--warmup", "1",
                        "--span", "16M", "--mark-file", mark.toString()));
            } finally {
                System.setOut(stdout);
            }
            assertEquals(List.of("measuring", "done"), Files.readAllLines(mark));
            assertTrue(printed.toString().contains("IOPS"), printed.toString());
            for (Path bad : new Path[] {mark, dir.resolve("missing/mark")}) {
                java.io.StringWriter err = new java.io.StringWriter();
                CommandLine c = org.jvirtio.examples.cli.Cli.oneLineFailures("bench", new BlkBench());
                c.setErr(new java.io.PrintWriter(err, true));
                assertEquals(2, c.execute("--socket", sock.toString(), "--mark-file", bad.toString()), bad.toString());
                assertTrue(err.toString().startsWith("bench: --mark-file " + bad), err.toString());
                assertEquals(1, err.toString().strip().lines().count(), err.toString());
            }
            assertEquals(List.of("measuring", "done"), Files.readAllLines(mark), "a refused run leaves the file alone");
        }
    }

    @Test
    void theMainJobRunsAndVerifies() {
        CommandLine cmd = BlkDemo.commandLine();
        assertEquals(0, cmd.execute("--seconds", "1", "--depth", "8", "--disk", "16M"));
        assertEquals(2, BlkDemo.commandLine().execute("--depth", "0"));
    }

    @Test
    void badFlagsAndUnusableImagesExitWith2() throws Exception {
        String sock = dir.resolve("x.sock").toString();
        Files.write(dir.resolve("odd.img"), new byte[1000]);
        String[][] cases = {
            {"--socket", sock, "--ram", "1000"},
            {"--socket", sock, "--ram", "lots"},
            {"--socket", dir.resolve("missing/x.sock").toString(), "--ram", "1M"},
            {"--socket", sock, "--image", dir.resolve("none.img").toString()},
            {"--socket", sock, "--image", dir.resolve("odd.img").toString()},
            {"--socket", sock},
            {"--socket", sock, "--ram", "1M", "--null", "1M"},
            {"--socket", sock, "--ram", "1M", "--queues", "0"},
            {"--socket", sock, "--ram", "1M", "--direct"},
            {"--socket", sock, "--ram", "1M", "--drain-timeout", "0"},
            {"--socket", sock, "--ram", "1M", "--drain-timeout", "soon"},
            {"--ram", "1M"},
        };
        for (String[] args : cases) {
            java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
            assertEquals(2, VhostUserBlkCommand.run(args, new java.io.PrintStream(new java.io.ByteArrayOutputStream(), true),
                    new java.io.PrintStream(err, true)), String.join(" ", args));
            assertEquals(1, err.toString().strip().lines().count(), "one line: " + err);
            assertFalse(Files.exists(dir.resolve("x.sock")), "nothing listens after a refused start");
        }
    }
}
