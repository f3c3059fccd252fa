package org.jvirtio.examples.blk;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.spi.ToolProvider;
import java.time.Duration;

import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The JVM options the backend launchers use (bin/lib/backend-jvm.sh, issue 13) cannot rot: read
 * from the script itself, they start {@code bin/vhost-user blk} on an image, a front-end writes
 * and reads back 256 blocks at queue depth 32, and the process really runs with them (the serial
 * collector, the small heap) and with JVIRTIO_JAVA_OPTS-style overrides after them. Not timed:
 * bench/footprint.sh measures what they buy.
 */
class BackendJvmOptionsTest {
    @TempDir
    Path dir;

    /** The option array the script builds, without the AOT cache (made from jars, not this test's class directories). */
    static List<String> scriptOptions() throws Exception {
        return bash("printf '%s\\n' \"${JVIRTIO_BACKEND_OPTS[@]}\"");
    }

    /** Runs {@code command} after sourcing the script (without making its cache); the output's lines. */
    static List<String> bash(String command) throws Exception {
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        Path script = root.resolve("bin/lib/backend-jvm.sh");
        assertTrue(Files.exists(script), script.toString());
        Process p = new ProcessBuilder("bash", "-c", "set -euo pipefail; root='" + root + "'; jar=/nonexistent; JVIRTIO_AOT=off; jvirtio_major="
                + Runtime.version().feature() + "; JAVA_HOME='" + System.getProperty("java.home") + "'; . '" + script + "'; " + command)
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        return Arrays.stream(out.split("\n")).filter(s -> !s.isBlank()).toList();
    }

    @Test
    void theBackendRunsAndServesWithTheLaunchersOptions() throws Exception {
        List<String> opts = scriptOptions();
        assertTrue(opts.contains("-XX:+UseSerialGC"), opts.toString());
        assertTrue(opts.stream().anyMatch(o -> o.startsWith("-Xmx")), opts.toString());
        boolean jdk25 = Runtime.version().feature() == 25;
        assertEquals(jdk25, opts.contains("-XX:-AOTReplayTraining"), "training replay is turned off on JDK 25 only: " + opts);
        List<String> extra = List.of("-Xss1m"); // an override after the defaults, as JVIRTIO_JAVA_OPTS is
        Path log = dir.resolve("backend.log");
        Process backend = startAndServe(opts, extra, System.getProperty("java.class.path"), log);
        try {
            // The process runs with what the script says (the JVM's own flag dump)
            String f = jcmd(backend, "VM.flags");
            assertTrue(f.contains("-XX:+UseSerialGC"), f);
            assertTrue(f.contains("-XX:ThreadStackSize=1024"), "the override after the defaults wins: " + f);
            assertTrue(f.contains("-XX:CompileThresholdScaling=10"), f);
            assertEquals(jdk25, f.contains("-XX:-AOTReplayTraining"), f);
        } finally {
            stop(backend);
        }
    }

    /** A live C2 compilation of the split ring's pop in {@code jcmd Compiler.codelist} (id, level, state 0 = in use, method). */
    private static final Pattern C2_POP = Pattern.compile("(?m)^\\d+ 4 0 org\\.jvirtio\\.ring\\.SplitQueue\\.popChain\\(");

    /**
     * The project's own classes keep the JDK's usual compile thresholds under the launcher's
     * tenfold scaling: within 30,000 requests (seconds of a disk on the network) the ring's pop
     * is compiled by C2 (at the usual thresholds it is queued after 5,000 calls; the JIT raises
     * that while its queue is long, so requests go on in batches until it is there, then the
     * compilation queued is waited for). With the
     * tenfold scaling on it too, it needs 50,000 calls first (and a slow disk's request path ran
     * profiled code for its first 25 s, and again after each front-end reconnect). Not timed: it
     * waits for the compilation, however long it takes, and fails only if 30,000 requests did not
     * bring it.
     */
    @Test
    void theRequestPathReachesC2AtTheUsualThresholds() throws Exception {
        Path log = dir.resolve("backend.log");
        Process backend = startAndServe(scriptOptions(), List.of(), System.getProperty("java.class.path"), log);
        try {
            int batch = 5_000;
            int sent = 0;
            boolean compiled = false;
            try (BlkClient c = new BlkClient(dir.resolve("blk.sock"), 32, 4096)) {
                while (!compiled && sent < 30_000) {
                    reads(c, batch);
                    sent += batch;
                    compiled = c2Pop(backend);
                }
            }
            int requests = sent;
            if (!compiled) {
                Await.await(() -> c2Pop(backend), Duration.ofSeconds(30),
                        () -> "the ring's pop is not compiled by C2 after " + requests + " requests: " + jcmd(backend, "Compiler.codelist").lines()
                                .filter(l -> l.contains("popChain")).toList());
            }
        } finally {
            stop(backend);
        }
    }

    /** Whether the ring's pop is compiled by C2 in {@code backend} now. */
    private static boolean c2Pop(Process backend) throws Exception {
        return C2_POP.matcher(jcmd(backend, "Compiler.codelist")).find();
    }

    /** {@code n} 4 KiB reads at queue depth 32 over the first 4 MiB, each checked for success. */
    private static void reads(BlkClient c, int n) throws Exception {
        int[] issued = {0};
        int[] done = {0};
        for (int t = 0; t < 32; t++) {
            c.submit(t, VirtioBlk.T_IN, 8L * t, 4096);
            issued[0]++;
        }
        c.flushSubmissions();
        while (done[0] < n) {
            int before = done[0];
            c.reap((tag, status, nanos) -> {
                assertEquals(VirtioBlk.S_OK, status);
                done[0]++;
                if (issued[0] < n) {
                    c.submit(tag, VirtioBlk.T_IN, 8L * (issued[0]++ % 1024), 4096);
                }
            }, 5000);
            assertTrue(done[0] > before, "no read answered within 5 s");
            c.flushSubmissions();
        }
    }

    /**
     * The start-up cache is made for an address drawn at random when it is made, and a backend
     * maps it there without relocating it (so its read-only part stays clean and shared between
     * backends), then serves I/O. The script's own functions make it, from jars of this test's
     * class path (a cache cannot be made from class directories).
     */
    @Test
    void theStartUpCacheIsMadeForARandomAddressAndMappedThereWithoutRelocation() throws Exception {
        List<Long> bases = bash("for i in $(seq 32); do jvirtio_archive_base; done").stream()
                .map(b -> Long.parseUnsignedLong(b.substring(2), 16)).toList();
        assertEquals(32, bases.size(), bases.toString());
        for (long b : bases) {
            assertEquals(0, b & 0xFF_FFFFL, "16 MiB-aligned: " + Long.toHexString(b));
            assertTrue(b >= 1L << 40 && b < 80L << 40, "in [1 TiB, 80 TiB): " + Long.toHexString(b));
        }
        assertTrue(bases.stream().distinct().count() >= 30, "drawn at random: " + bases);

        String cp = jarredClassPath();
        Path aot = dir.resolve("backend.aot");
        List<String> opts = bash("JVIRTIO_BACKEND_CLASSPATH='" + cp + "'; jvirtio_aot='" + aot
                + "'; jvirtio_train_aot 2>/dev/null; jvirtio_use_aot; printf '%s\\n' \"${JVIRTIO_BACKEND_OPTS[@]}\"");
        assertTrue(Files.size(aot) > 1 << 20, "a cache was made");
        long base = Long.parseUnsignedLong(Files.readString(Path.of(aot + ".base")).strip().substring(2), 16);
        assertTrue(opts.contains("-XX:AOTCache=" + aot), opts.toString());
        boolean jdk25 = Runtime.version().feature() == 25;
        assertEquals(jdk25, opts.contains("-XX:ArchiveRelocationMode=0"), opts.toString());

        Path aotLog = dir.resolve("aot.log");
        Path log = dir.resolve("backend.log");
        Process backend = startAndServe(opts, List.of("-Xlog:aot=info:file=" + aotLog), cp, log);
        try {
            String mapped = Files.readString(aotLog);
            Matcher m = Pattern.compile("Mapped static +region #0 at base 0x([0-9a-f]+)").matcher(mapped);
            assertTrue(m.find(), "the cache was mapped: " + mapped);
            long at = Long.parseUnsignedLong(m.group(1), 16);
            if (jdk25) {
                assertEquals(Long.toHexString(base), Long.toHexString(at & ~0xFF_FFFFL), "mapped where it was made for: " + mapped);
            }
            assertFalse(mapped.contains("Unable to use") || mapped.contains("Loading static archive failed"), mapped);
        } finally {
            stop(backend);
        }
    }

    /** This test's class path with every class directory packed into a jar in the temporary directory. */
    private String jarredClassPath() throws Exception {
        List<String> out = new ArrayList<>();
        int n = 0;
        for (String e : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
            Path p = Path.of(e);
            if (Files.isDirectory(p)) {
                Path jar = dir.resolve("cp-" + n++ + ".jar");
                int rc = ToolProvider.findFirst("jar").orElseThrow()
                        .run(System.out, System.err, "--create", "--file", jar.toString(), "-C", p.toString(), ".");
                assertEquals(0, rc, "jar of " + p);
                out.add(jar.toString());
            } else if (Files.exists(p)) {
                out.add(e);
            }
        }
        return String.join(java.io.File.pathSeparator, out);
    }

    private static String jcmd(Process backend, String command) throws Exception {
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(), Long.toString(backend.pid()),
                command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        return out;
    }

    private static void stop(Process backend) throws InterruptedException {
        backend.destroy();
        assertTrue(backend.waitFor(20, TimeUnit.SECONDS));
    }

    /**
     * Starts {@code bin/vhost-user blk} on a 4 MiB image with {@code opts} then {@code extra}, and
     * writes and reads back 256 blocks at queue depth 32; the backend is left running.
     */
    private Process startAndServe(List<String> opts, List<String> extra, String classPath, Path log) throws Exception {
        Path image = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(0);
            f.setLength(4 << 20);
        }
        Path socket = dir.resolve("blk.sock");
        Files.deleteIfExists(socket);
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(opts);
        cmd.addAll(extra);
        cmd.addAll(List.of("-cp", classPath, "org.jvirtio.runner.VhostUserRunner", "blk",
                "--socket", socket.toString(), "--image", image.toString()));
        Process backend = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        boolean served = false;
        try {
            Await.await(() -> {
                assertTrue(backend.isAlive(), "the backend exited with the launcher's options: " + Files.readString(log));
                return Files.exists(socket);
            }, Duration.ofSeconds(30), () -> "no socket: " + Files.readString(log));
            long deadline = System.nanoTime() + 30_000_000_000L;
            try (BlkClient c = new BlkClient(socket, 32, 4096)) {
                for (int pass = 0; pass < 2; pass++) {
                    int type = pass == 0 ? VirtioBlk.T_OUT : VirtioBlk.T_IN;
                    for (int base = 0; base < 256; base += 32) {
                        for (int t = 0; t < 32; t++) {
                            if (type == VirtioBlk.T_OUT) {
                                c.memory().slice(c.dataAddress(t), 4096).fill((byte) (base + t));
                            } else {
                                c.memory().slice(c.dataAddress(t), 4096).fill((byte) 0);
                            }
                            c.submit(t, type, 8L * (base + t), 4096);
                        }
                        c.flushSubmissions();
                        int[] got = {0};
                        while (got[0] < 32) {
                            int b = base;
                            c.reap((tag, status, nanos) -> {
                                assertEquals(VirtioBlk.S_OK, status);
                                if (type == VirtioBlk.T_IN) {
                                    assertEquals((byte) (b + tag), c.memory().slice(c.dataAddress(tag), 4096).get(java.lang.foreign.ValueLayout.JAVA_BYTE, 4095),
                                            "block " + (b + tag));
                                }
                                got[0]++;
                            }, 5000);
                            assertTrue(System.nanoTime() < deadline + 30_000_000_000L, "requests not answered: " + Files.readString(log));
                        }
                    }
                }
            }
            served = true;
            return backend;
        } finally {
            if (!served) {
                backend.destroy();
            }
        }
    }
}
