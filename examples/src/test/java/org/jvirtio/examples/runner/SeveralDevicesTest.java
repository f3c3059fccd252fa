package org.jvirtio.examples.runner;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.time.Duration;

import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.examples.blk.BlkClient;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.vhostuser.DriverQueue;
import org.jvirtio.transport.vhostuser.DriverSession;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Several devices in one runner process ({@code bin/vhost-user blk ... + blk ... + rng ...}), as
 * qemu-storage-daemon serves several exports: each on its own socket, driven at the same time,
 * reloaded together on SIGHUP and stopped together on SIGTERM, sharing one control thread and
 * the I/O threads; a bad part starts none.
 */
class SeveralDevicesTest {
    @TempDir
    Path dir;

    private static int status(BlkClient c, int tag, int type, long sector, int bytes) throws Exception {
        c.submit(tag, type, sector, bytes);
        c.flushSubmissions();
        int[] st = {-1};
        assertEquals(1, c.reap((t, s, n) -> st[0] = s, 10_000));
        return st[0];
    }

    @Test
    void threeDevicesInOneProcessServedAtOnceReloadedAndStoppedTogether() throws Exception {
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        Path c = dir.resolve("c.sock");
        Path img = dir.resolve("b.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8 << 20);
        }
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-Dguice_bytecode_gen_option=DISABLED", "-cp", System.getProperty("java.class.path"),
                "org.jvirtio.runner.VhostUserRunner",
                "blk", "--socket", a.toString(), "--ram", "4M", "--serial", "+",
                "+", "blk", "--socket", b.toString(), "--image", img.toString(), "--queues", "2",
                "+", "rng", "--socket", c.toString(), "--stats", "1");
        Path log = dir.resolve("out.txt");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            Await.await(() -> {
                assertTrue(p.isAlive(), "the runner ended: " + Files.readString(log));
                return Files.exists(a) && Files.exists(b) && Files.exists(c);
            }, Duration.ofSeconds(30), () -> "not all sockets within 30 s: " + Files.readString(log));
            // The two disks at once, each verified; "+" after --serial was the serial, not a separator.
            try (BlkClient ca = new BlkClient(a, 8, 65536); BlkClient cb = new BlkClient(b, 8, 65536, 2)) {
                assertEquals((4 << 20) / 512, ca.capacitySectors());
                assertEquals((8 << 20) / 512, cb.capacitySectors());
                assertEquals(2, cb.queueCount());
                byte[] da = new byte[65536];
                byte[] db = new byte[65536];
                new Random(1).nextBytes(da);
                new Random(2).nextBytes(db);
                ca.put(0, da);
                cb.put(0, db);
                ca.submit(0, VirtioBlk.T_OUT, 64, 65536);
                cb.submit(0, VirtioBlk.T_OUT, 64, 65536);
                ca.flushSubmissions();
                cb.flushSubmissions();
                int[] st = {-1, -1};
                assertEquals(1, ca.reap((t, s, n) -> st[0] = s, 10_000));
                assertEquals(1, cb.reap((t, s, n) -> st[1] = s, 10_000));
                assertArrayEquals(new int[] {VirtioBlk.S_OK, VirtioBlk.S_OK}, st);
                ca.put(1, new byte[65536]);
                cb.put(1, new byte[65536]);
                assertEquals(VirtioBlk.S_OK, status(ca, 1, VirtioBlk.T_IN, 64, 65536));
                assertEquals(VirtioBlk.S_OK, status(cb, 1, VirtioBlk.T_IN, 64, 65536));
                assertArrayEquals(da, ca.get(1, 65536), "disk a reads back its own data");
                assertArrayEquals(db, cb.get(1, 65536), "disk b its own");
                assertEquals(VirtioBlk.S_OK, status(ca, 2, VirtioBlk.T_GET_ID, 0, 512));
                assertEquals("+", new String(ca.get(2, 1), StandardCharsets.US_ASCII));
            }
            try (DriverSession s = DriverSession.connect(c, 1 << 20)) {
                s.negotiate(~0L);
                DriverQueue q = s.queue(0, 8);
                long buf = s.allocate(512, 8);
                assertTrue(q.ring().add(new long[] {buf}, new int[] {512}, 1, 0, 1) >= 0);
                q.publish();
                int[] len = {-1};
                assertEquals(1, q.awaitUsed((head, token, l) -> len[0] = l, 5000));
                assertEquals(512, len[0]);
                byte[] bytes = new byte[512];
                s.memory().read(buf, MemorySegment.ofArray(bytes));
                assertFalse(java.util.Arrays.equals(bytes, new byte[512]), "entropy");
            }
            // The three share the process's threads: one control loop, one I/O thread (--iothreads
            // defaults to 1 and no part asks for more), after every queue has served.
            List<String> threads = threadNames(p.pid());
            assertEquals(1, threads.stream().filter(t -> t.startsWith("jvirtio-control")).count(), threads.toString());
            assertEquals(1, threads.stream().filter(t -> t.startsWith("jvirtio-io")).count(), threads.toString());
            // SIGHUP reloads each device; the disk grown under b announces its new size.
            try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
                f.setLength(16 << 20);
            }
            assertEquals(0, new ProcessBuilder("kill", "-HUP", Long.toString(p.pid())).start().waitFor());
            awaitLine(log, "blk (a.sock): capacity is " + (4 << 20) / 512 + " sectors");
            awaitLine(log, "blk (b.sock): capacity is " + (16 << 20) / 512 + " sectors");
            awaitLine(log, "rng (c.sock): stats: q0 requests=1 bytes=512 errors=0 in-flight=0");
            assertTrue(Files.readAllLines(log).stream().noneMatch(x -> x.startsWith("blk (a.sock): stats") || x.startsWith("stats:")),
                    "only rng asked for stats");
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(10, TimeUnit.SECONDS), "SIGTERM ends the runner: " + Files.readString(log));
            assertEquals(0, p.exitValue(), Files.readString(log));
        } finally {
            p.destroyForcibly();
        }
        List<String> seen = Files.readAllLines(log);
        assertEquals(3, seen.stream().filter(x -> x.endsWith(": stopped")).count(), String.join("\n", seen));
        for (Path s : List.of(a, b, c)) {
            assertFalse(Files.exists(s), s + " removed on exit");
        }
        assertEquals(3, seen.stream().filter(x -> x.startsWith("  -object memory-backend-memfd")).count(), "a QEMU fragment each");
    }

    /** The names of the process's threads (/proc/PID/task/N/comm). */
    private static List<String> threadNames(long pid) throws Exception {
        try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            return tasks.map(t -> {
                try {
                    return Files.readString(t.resolve("comm")).strip();
                } catch (java.io.IOException e) {
                    return ""; // the thread ended meanwhile
                }
            }).toList();
        }
    }

    /** Waits up to 10 s for {@code line} in the runner's output. */
    private static void awaitLine(Path log, String line) throws Exception {
        Await.await(() -> Files.readAllLines(log).contains(line), Duration.ofSeconds(10), () -> "no line '" + line + "' in: " + Files.readString(log));
    }

    private static int run(ByteArrayOutputStream err, String... args) {
        return VhostUserRunner.run(VhostUserRunner.devices(), args, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    /** A bad part, two parts on one socket, a part that cannot start: one line, exit 2, nothing listens. */
    @Test
    void aBadPartStartsNone() throws Exception {
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        String[][] bad = {
            {"blk", "--socket", a.toString(), "--ram", "1M", "+", "blk", "--socket", b.toString(), "--ram", "1M", "--queues", "x"},
            {"blk", "--socket", a.toString(), "--ram", "1M", "+", "blk", "--socket", a.toString(), "--ram", "1M"},
            {"blk", "--socket", a.toString(), "--ram", "1M", "+"},
            {"blk", "--socket", a.toString(), "--ram", "1M", "+", "nosuch", "--socket", b.toString()},
            {"blk", "--socket", a.toString(), "--ram", "1M", "+", "blk", "--socket", b.toString(), "--image", dir.resolve("missing.img").toString()},
            {"blk", "--socket", a.toString(), "--ram", "1M", "+", "--socket", b.toString()},
        };
        String[] expect = {"blk (device 2): ", "blk (device 2): --socket " + a + " is another device's too",
            "vhost-user: device 2 after '+': name a device first", "vhost-user: device 2: no device named 'nosuch'",
            "blk (device 2): ", "vhost-user: device 2 after '+': name a device first"};
        for (int i = 0; i < bad.length; i++) {
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            assertEquals(2, run(err, bad[i]), String.join(" ", bad[i]));
            String e = err.toString(StandardCharsets.UTF_8).strip();
            assertEquals(1, e.lines().count(), e);
            assertTrue(e.startsWith(expect[i]), e);
            assertFalse(Files.exists(a) || Files.exists(b), "nothing listens after: " + String.join(" ", bad[i]));
        }
    }
}
