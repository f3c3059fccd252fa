package org.jvirtio.examples;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.time.Duration;

import org.jvirtio.transport.vhostuser.DriverQueue;
import org.jvirtio.transport.vhostuser.DriverSession;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A device written outside jvirtio's modules, as a user would (examples/user-device, the device
 * docs/DEVICES.md walks through): compiled here against jvirtio's jars, packed into a jar with its
 * ServiceLoader entry, put on the runner's class path, and served by a separate runner process
 * (what bin/vhost-user runs); then driven with the driver kit.
 */
class UserDeviceTest {
    @TempDir
    static Path work;
    static Path jar;

    @BeforeAll
    static void buildTheUsersJar() throws Exception {
        Path src = Path.of("user-device/src/main").toAbsolutePath();
        Path classes = Files.createDirectories(work.resolve("classes"));
        // As a user would build it: javac against jvirtio's jars (the test's class path), then jar.
        Path jdk = Path.of(System.getProperty("java.home"), "bin");
        List<String> javac = new ArrayList<>(List.of(jdk.resolve("javac").toString(), "-d", classes.toString(),
                "-classpath", System.getProperty("java.class.path"), "--release", "25", "-Xlint:all", "-Werror", "-proc:none"));
        try (Stream<Path> files = Files.walk(src.resolve("java"))) {
            files.filter(p -> p.toString().endsWith(".java")).forEach(p -> javac.add(p.toString()));
        }
        run(javac);
        jar = work.resolve("user-device.jar");
        run(List.of(jdk.resolve("jar").toString(), "--create", "--file", jar.toString(),
                "-C", classes.toString(), ".", "-C", src.resolve("resources").toString(), "."));
    }

    private static void run(List<String> cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), cmd.get(0) + " timed out");
        assertEquals(0, p.exitValue(), cmd.get(0) + " failed: " + out);
    }

    /** A runner process, as bin/vhost-user starts it, with the user's jar on its class path. */
    private static Process runner(Path log, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-Dguice_bytecode_gen_option=DISABLED",
                "-cp", System.getProperty("java.class.path") + ":" + jar, "org.jvirtio.runner.VhostUserRunner"));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    private static void awaitSocket(Path sock, Process p, Path log) throws Exception {
        Await.await(() -> {
            assertTrue(p.isAlive(), () -> "runner exited: " + read(log));
            return Files.exists(sock);
        }, Duration.ofSeconds(30), () -> "no socket after 30 s: " + read(log));
    }

    private static String read(Path log) {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return e.toString();
        }
    }

    /** Reads {@code n} bytes of entropy through queue 0 as 512-byte requests; returns them. */
    private static byte[] entropy(Path sock, int n) throws Exception {
        try (DriverSession s = DriverSession.connect(sock, 1 << 20)) {
            s.negotiate(~0L);
            DriverQueue q = s.queue(0, 8);
            long buf = s.allocate(n, 8);
            for (int off = 0; off < n; off += 512) {
                assertTrue(q.ring().add(new long[] {buf + off}, new int[] {512}, 1, 0, off) >= 0);
                q.publish();
                int[] len = {-1};
                assertEquals(1, q.awaitUsed((head, token, l) -> len[0] = l, 5000), "no answer at " + off);
                assertEquals(512, len[0]);
            }
            byte[] out = new byte[n];
            s.memory().read(buf, MemorySegment.ofArray(out));
            return out;
        }
    }

    @Test
    void theRunnerServesTheUsersDevice() throws Exception {
        Path sock = work.resolve("dice.sock");
        Path log = work.resolve("dice.log");
        Process p = runner(log, "dice", "--socket", sock.toString(), "--face", "6");
        try {
            awaitSocket(sock, p, log);
            for (byte b : entropy(sock, 4096)) {
                assertEquals(6, b);
            }
        } finally {
            p.destroy(); // SIGTERM
        }
        assertTrue(p.waitFor(10, TimeUnit.SECONDS), "SIGTERM ends the runner");
        assertEquals(0, p.exitValue(), read(log));
        String out = read(log);
        assertTrue(out.contains("dice: serving a die showing 6 on " + sock), out);
        // id 4 is QEMU's vhost-user-rng-pci
        assertTrue(out.contains("-device vhost-user-rng-pci,chardev=vurng0"), out);
        assertTrue(out.contains("dice: stopped"), out);
        assertFalse(Files.exists(sock), "the socket is removed on exit");
    }

    @Test
    void theUsersOwnEntropySourceBoundIntoJvirtiosRng() throws Exception {
        Path sock = work.resolve("srng.sock");
        Path log = work.resolve("srng.log");
        Process p = runner(log, "secure-rng", "--socket", sock.toString());
        try {
            awaitSocket(sock, p, log);
            byte[] a = entropy(sock, 1024);
            int distinct = (int) java.util.stream.IntStream.range(0, a.length).map(i -> a[i] & 0xff).distinct().count();
            assertTrue(distinct > 200, "random-looking bytes: " + distinct + " distinct values in 1 KiB");
        } finally {
            p.destroy();
        }
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
    }

    /**
     * The user's device that waits for the world (docs/DEVICES.md, "Devices that wait for
     * input"): the driver's buffers stay in its ring until the bell rings (SIGHUP), each ring
     * fills one, and a stop while it waits answers at once with only the buffers filled.
     */
    @Test
    void theDoorbellAnswersOnlyWhenItRingsAndAStopDoesNotWaitForIt() throws Exception {
        Path sock = work.resolve("bell.sock");
        Path log = work.resolve("bell.log");
        Process p = runner(log, "doorbell", "--socket", sock.toString(), "--message", "ding dong");
        try {
            awaitSocket(sock, p, log);
            try (DriverSession s = DriverSession.connect(sock, 1 << 20)) {
                s.negotiate(~0L);
                DriverQueue q = s.queue(0, 8);
                long buf = s.allocate(4 * 64, 8);
                for (int i = 0; i < 4; i++) {
                    assertTrue(q.ring().add(new long[] {buf + 64L * i}, new int[] {64}, 1, 0, i) >= 0);
                }
                q.publish();
                List<Long> filled = new ArrayList<>();
                assertEquals(0, q.awaitUsed((head, token, len) -> filled.add(token), 300), "nobody rang");
                for (int ring = 1; ring <= 3; ring++) {
                    assertEquals(0, new ProcessBuilder("kill", "-HUP", Long.toString(p.pid())).start().waitFor());
                    long deadline = System.nanoTime() + 10_000_000_000L;
                    while (filled.size() < ring) {
                        assertTrue(System.nanoTime() < deadline, "ring " + ring + " filled nothing: " + read(log));
                        q.awaitUsed((head, token, len) -> {
                            assertEquals(9, len);
                            filled.add(token);
                        }, 100);
                    }
                }
                assertEquals(List.of(0L, 1L, 2L), filled, "one buffer per ring, in the driver's order");
                byte[] m = new byte[9];
                s.memory().read(buf + 64, MemorySegment.ofArray(m));
                assertEquals("ding dong", new String(m, java.nio.charset.StandardCharsets.UTF_8));
                long t0 = System.nanoTime();
                // Packed rings (negotiated): avail position 3 and used position 3, each with wrap counter 1.
                int third = org.jvirtio.ring.PackedQueue.FRESH + 3;
                assertEquals(third | third << 16, s.frontend().getVringBase(0), "the fourth buffer is still the driver's");
                assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "the stop did not wait for the bell");
            }
        } finally {
            p.destroy();
        }
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        assertTrue(read(log).contains("doorbell: the bell rang"), read(log));
    }

    /** Selects (select, subsel) as QEMU's front-end does: the whole space read, the two bytes changed, the whole space written. */
    private static byte[] select(DriverSession s, int select, int subsel) throws IOException {
        byte[] cfg = s.frontend().getConfig(0, 136);
        cfg[0] = (byte) select;
        cfg[1] = (byte) subsel;
        s.frontend().setConfig(0, cfg);
        byte[] now = s.frontend().getConfig(0, 136);
        return java.util.Arrays.copyOfRange(now, 8, 8 + (now[2] & 0xff)); // the union, size bytes of it
    }

    /**
     * The user's keyboard (virtio-input, VIRTIO 1.3, 5.8), checked as Linux's virtio_input probes
     * it: its name, ids, the events it sends (EV_SYN, EV_KEY with the keys it has) and none it
     * does not; then SIGHUP types "hi" into the event queue's buffers (press, report, release,
     * report per key) and the status queue takes an LED change. (QEMU 7.2's vhost-user-input-pci
     * needs KVM, so no guest here: docs/FEATURES.md.)
     */
    @Test
    void theKeyboardDescribesItselfAndTypesIntoTheEventQueue() throws Exception {
        Path sock = work.resolve("kbd.sock");
        Path log = work.resolve("kbd.log");
        Process p = runner(log, "keyboard", "--socket", sock.toString(), "--text", "hi");
        try {
            awaitSocket(sock, p, log);
            try (DriverSession s = DriverSession.connect(sock, 1 << 20)) {
                s.negotiate(~0L);
                assertEquals("jvirtio keyboard", new String(select(s, 0x01, 0), java.nio.charset.StandardCharsets.UTF_8));
                assertEquals("jvirtio-0", new String(select(s, 0x02, 0), java.nio.charset.StandardCharsets.UTF_8));
                assertEquals(8, select(s, 0x03, 0).length, "ID_DEVIDS: bustype, vendor, product, version");
                assertArrayEquals(new byte[] {1}, select(s, 0x11, 0), "EV_SYN: SYN_REPORT");
                byte[] keys = select(s, 0x11, 1);
                assertTrue((keys[35 / 8] & (1 << (35 % 8))) != 0, "KEY_H (35)");
                assertTrue((keys[23 / 8] & (1 << (23 % 8))) != 0, "KEY_I (23)");
                assertEquals(0, select(s, 0x11, 2).length, "no EV_REL");
                assertEquals(0, select(s, 0x12, 0).length, "no ABS_INFO");
                assertEquals(0, select(s, 0x10, 0).length, "no PROP_BITS");
                assertEquals(0, select(s, 0x00, 0).length, "UNSET");
                DriverQueue events = s.queue(0, 64);
                DriverQueue status = s.queue(1, 8);
                long buf = s.allocate(64 * 8, 8);
                for (int i = 0; i < 64; i++) {
                    assertTrue(events.ring().add(new long[] {buf + 8L * i}, new int[] {8}, 1, 0, i) >= 0);
                }
                events.publish();
                assertEquals(0, events.awaitUsed((h, t, l) -> fail("an event before any key"), 300));
                assertEquals(0, new ProcessBuilder("kill", "-HUP", Long.toString(p.pid())).start().waitFor());
                List<long[]> got = new ArrayList<>();
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (got.size() < 8) {
                    assertTrue(System.nanoTime() < deadline, "events: " + got.size() + " of 8: " + read(log));
                    events.awaitUsed((h, t, l) -> {
                        assertEquals(8, l);
                        long a = buf + 8 * t;
                        got.add(new long[] {s.memory().readU16(a), s.memory().readU16(a + 2), s.memory().readU32(a + 4)});
                    }, 100);
                }
                long[][] want = {{1, 35, 1}, {0, 0, 0}, {1, 35, 0}, {0, 0, 0}, {1, 23, 1}, {0, 0, 0}, {1, 23, 0}, {0, 0, 0}};
                for (int i = 0; i < want.length; i++) {
                    assertArrayEquals(want[i], got.get(i), "event " + i + " (type, code, value)");
                }
                long led = s.allocate(8, 8);
                s.memory().writeU16(led, 0x11); // EV_LED
                s.memory().writeU16(led + 2, 1); // LED_CAPSL
                s.memory().writeU32(led + 4, 1);
                assertTrue(status.ring().add(new long[] {led}, new int[] {8}, 1, 1, 7) >= 0);
                status.publish();
                int[] len = {-1};
                assertEquals(1, status.awaitUsed((h, t, l) -> len[0] = l, 5000), "the status queue takes the LED change");
                assertEquals(0, len[0]);
            }
        } finally {
            p.destroy();
        }
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        assertTrue(read(log).contains("keyboard: typed 2 characters"), read(log));
    }

    @Test
    void helpListsTheUsersDevicesAndABadFlagIsOneLine() throws Exception {
        Path log = work.resolve("help.log");
        Process p = runner(log, "--help");
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        String help = read(log);
        assertTrue(help.contains("Devices found: blk, dice, doorbell, keyboard, net, rng, secure-rng."), help);
        p = runner(log, "dice", "--socket", work.resolve("x.sock").toString(), "--face", "9");
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(2, p.exitValue());
        String err = read(log).strip();
        assertEquals(1, err.lines().count(), err);
        assertTrue(err.contains("--face must be in [1, 6], got 9"), err);
        assertFalse(Files.exists(work.resolve("x.sock")));
    }
}
