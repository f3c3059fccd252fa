package org.jvirtio.examples.blk;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.jvirtio.blk.VirtioBlk;
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
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        Path script = root.resolve("bin/lib/backend-jvm.sh");
        assertTrue(Files.exists(script), script.toString());
        Process p = new ProcessBuilder("bash", "-c", "set -euo pipefail; root='" + root + "'; jar=/nonexistent; JVIRTIO_AOT=off; jvirtio_major="
                + Runtime.version().feature() + "; . '" + script
                + "'; printf '%s\\n' \"${JVIRTIO_BACKEND_OPTS[@]}\"").redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
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
        Path image = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(4 << 20);
        }
        Path socket = dir.resolve("blk.sock");
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(opts);
        cmd.add("-Xss1m"); // an override after the defaults, as JVIRTIO_JAVA_OPTS is
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "org.jvirtio.runner.VhostUserRunner", "blk",
                "--socket", socket.toString(), "--image", image.toString()));
        Path log = dir.resolve("backend.log");
        Process backend = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (!Files.exists(socket)) {
                assertTrue(backend.isAlive(), "the backend exited with the launcher's options: " + Files.readString(log));
                assertTrue(System.nanoTime() < deadline, "no socket: " + Files.readString(log));
                Thread.sleep(20);
            }
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
            // The process runs with what the script says (jcmd-free: the JVM's own flag dump)
            Process flags = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(), Long.toString(backend.pid()),
                    "VM.flags").redirectErrorStream(true).start();
            String f = new String(flags.getInputStream().readAllBytes());
            assertTrue(flags.waitFor(30, TimeUnit.SECONDS));
            assertTrue(f.contains("-XX:+UseSerialGC"), f);
            assertTrue(f.contains("-XX:ThreadStackSize=1024"), "the override after the defaults wins: " + f);
            assertTrue(f.contains("-XX:CompileThresholdScaling=10"), f);
            assertEquals(jdk25, f.contains("-XX:-AOTReplayTraining"), f);
        } finally {
            backend.destroy();
            assertTrue(backend.waitFor(20, TimeUnit.SECONDS));
        }
    }
}
