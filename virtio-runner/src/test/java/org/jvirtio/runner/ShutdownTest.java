package org.jvirtio.runner;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.transport.vhostuser.DriverQueue;
import org.jvirtio.transport.vhostuser.DriverSession;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * SIGTERM ends a backend within seconds whatever its storage does (issue 14, item 3; before,
 * the shutdown waited for the held request without a limit and the process never ended): a
 * runner process serving a device that holds every request, with a front-end connected and a
 * request in flight, exits 0 within 5 s of SIGTERM, on both hosts.
 */
class ShutdownTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"--iothreads=1", "--thread-per-queue", "three devices"})
    void sigtermEndsTheProcessWithinSecondsWithARequestStuckInTheDevice(String host) throws Exception {
        // "three devices": one process serving three (bin/vhost-user stall ... + stall ... + stall
        // ...), a request stuck in each; they stop at once, not one after the other (failed
        // before: about 2 s each, 6 s in all).
        int devices = host.equals("three devices") ? 3 : 1;
        List<String> cmd = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "org.jvirtio.runner.VhostUserRunner"));
        for (int d = 0; d < devices; d++) {
            if (d > 0) {
                cmd.add(VhostUserRunner.AND);
            }
            cmd.addAll(List.of("stall", "--socket", dir.resolve("stall" + d + ".sock").toString()));
            if (devices == 1) {
                cmd.add(host);
            }
        }
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();
        Thread.ofPlatform().daemon().start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String l;
                while ((l = r.readLine()) != null) {
                    lines.add(l);
                }
            } catch (java.io.IOException e) {
                // the process ended
            }
        });
        List<DriverSession> sessions = new java.util.ArrayList<>();
        try {
            long deadline = System.nanoTime() + 30_000_000_000L;
            for (int d = 0; d < devices; d++) {
                Path socket = dir.resolve("stall" + d + ".sock");
                while (!Files.exists(socket)) {
                    assertTrue(p.isAlive(), "the runner ended: " + lines);
                    assertTrue(System.nanoTime() < deadline, "no socket within 30 s: " + lines);
                    Thread.sleep(20);
                }
                DriverSession s = DriverSession.connect(socket, 1 << 20);
                sessions.add(s);
                s.negotiate(~0L);
                DriverQueue q = s.queue(0, 16);
                long buf = s.allocate(64, 8);
                assertTrue(q.ring().add(new long[] {buf}, new int[] {64}, 1, 0, 1) >= 0);
                q.publish();
                String l;
                do {
                    l = lines.poll(30, TimeUnit.SECONDS);
                    assertNotNull(l, "the request never reached device " + d);
                } while (!l.startsWith("stalled"));
            }
            long t0 = System.nanoTime();
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(5, TimeUnit.SECONDS), "still running 5 s after SIGTERM: " + lines);
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertEquals(0, p.exitValue(), "exit status; output: " + lines);
            System.out.println("shutdown with a request stuck in the device (" + host + "): " + ms + " ms");
        } finally {
            p.destroyForcibly();
            sessions.forEach(DriverSession::close);
        }
    }
}
