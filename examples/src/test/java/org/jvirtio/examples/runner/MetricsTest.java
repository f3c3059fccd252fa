package org.jvirtio.examples.runner;

import java.net.HttpURLConnection;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.examples.blk.BlkClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code --metrics HOST:PORT} on the real runner process with two devices: scraped while the Java
 * front-end drives verified I/O on one of them, the counters move as the load says (requests,
 * bytes, in flight back to 0, connections), the other device's stay at zero, and Prometheus's
 * own {@code promtool check metrics} accepts the exposition (when installed; .ci/run installs it).
 */
class MetricsTest {
    @TempDir
    Path dir;

    private static final Pattern LISTENING = Pattern.compile("metrics: (http://\\S+/metrics)");

    private Process start(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-cp", System.getProperty("java.class.path"),
                "org.jvirtio.runner.VhostUserRunner"));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("backend.log").toFile()).start();
    }

    private String log() throws Exception {
        return Files.readString(dir.resolve("backend.log"));
    }

    /** One HTTP exchange with the endpoint: status, Content-Type, body. */
    private record Reply(int status, String contentType, String body) {
    }

    private static Reply get(String url, String method, String accept) throws Exception {
        HttpURLConnection c = (HttpURLConnection) URI.create(url).toURL().openConnection();
        c.setRequestMethod(method);
        if (accept != null) {
            c.setRequestProperty("Accept", accept);
        }
        if (method.equals("POST")) {
            c.setDoOutput(true);
            c.getOutputStream().write('x');
        }
        int status = c.getResponseCode();
        String body = status == 200 ? new String(c.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8) : "";
        c.disconnect();
        return new Reply(status, c.getHeaderField("Content-Type"), body);
    }

    private static double value(String exposition, String metric, String... labelParts) {
        for (String line : exposition.lines().toList()) {
            if ((line.startsWith(metric + "{") || line.startsWith(metric + " "))
                    && java.util.Arrays.stream(labelParts).allMatch(line::contains)) {
                return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        throw new AssertionError(metric + " with " + String.join(", ", labelParts) + " not in:\n" + exposition);
    }

    @Test
    void theCountersMoveAsTheLoadSaysAndPromtoolAcceptsThem() throws Exception {
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        Process p = start("blk", "--socket", a.toString(), "--ram", "16M", "--metrics", "127.0.0.1:0", "+", "rng", "--socket", b.toString());
        try {
            String url = null;
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (url == null) {
                assertTrue(p.isAlive() && System.nanoTime() < deadline, "no metrics line: " + log());
                Matcher m = LISTENING.matcher(log());
                url = m.find() ? m.group(1) : null;
                Thread.sleep(20);
            }
            String before = get(url, "GET", null).body();
            String aq0 = "socket=\"" + a + "\"";
            assertEquals(0, value(before, "jvirtio_queue_requests_total", aq0), 0);
            assertEquals(2, value(before, "jvirtio_devices", ""), 0);
            int writes = 200;
            try (BlkClient c = new BlkClient(a, 4, 4096)) {
                byte[] data = new byte[4096];
                for (int i = 0; i < writes; i++) {
                    data[0] = (byte) i;
                    c.put(0, data);
                    c.submit(0, VirtioBlk.T_OUT, 8L * i, 4096);
                    c.flushSubmissions();
                    int[] st = {-1};
                    c.reap((t, s, n) -> st[0] = s, 10_000);
                    assertEquals(VirtioBlk.S_OK, st[0]);
                }
                c.submit(1, 77, 0, 0); // an unsupported request: an error to the guest
                c.flushSubmissions();
                c.reap((t, s, n) -> { }, 10_000);
                Reply r = get(url, "GET", null);
                assertEquals(200, r.status());
                assertTrue(r.contentType().startsWith("text/plain"), r.contentType());
                String after = r.body();
                assertEquals(writes + 1, value(after, "jvirtio_queue_requests_total", aq0), 0);
                assertEquals(writes * 4096.0, value(after, "jvirtio_queue_bytes_total", aq0), 0);
                assertEquals(1, value(after, "jvirtio_queue_errors_total", aq0), 0);
                assertEquals(1, value(after, "jvirtio_queue_errors_by_kind_total", aq0, "kind=\"unsupported\""), 0);
                assertEquals(0, value(after, "jvirtio_queue_errors_by_kind_total", aq0, "kind=\"io\""), 0);
                assertEquals(0, value(after, "jvirtio_queue_bytes_to_guest_total", aq0), 0); // writes only
                assertEquals(0, value(after, "jvirtio_queue_in_flight", aq0), 0);
                assertEquals(1, value(after, "jvirtio_frontend_connections_total", aq0), 0);
                assertEquals(0, value(after, "jvirtio_frontend_connections_total", "socket=\"" + b + "\""), 0);
                assertTrue(after.contains("jvm_memory_used_bytes"), "JVM memory is exported");
                // the latency histogram: every request once, the buckets cumulative up to +Inf (a RAM
                // disk completes as it starts a request: all within the first bucket)
                assertEquals(writes + 1, value(after, "jvirtio_queue_request_latency_seconds_count", aq0), 0);
                assertEquals(writes + 1, value(after, "jvirtio_queue_request_latency_seconds_bucket", aq0, "le=\"+Inf\""), 0);
                assertTrue(value(after, "jvirtio_queue_wakeups_total", aq0) >= 1);
                assertEquals(0, value(after, "jvirtio_queue_ring_violations_total", aq0), 0);
                assertEquals(1, value(after, "jvirtio_frontends_connected", ""), 0);
                // OpenMetrics for scrapers that ask for it
                Reply om = get(url, "GET", "application/openmetrics-text; version=1.0.0");
                assertTrue(om.contentType().startsWith("application/openmetrics-text"), om.contentType());
                assertTrue(om.body().strip().endsWith("# EOF"), "OpenMetrics ends with # EOF");
                // anything but GET/HEAD is refused, and the endpoint goes on
                assertEquals(405, get(url, "POST", null).status());
                Path promtool = Path.of("/usr/bin/promtool");
                if (Files.isExecutable(promtool)) {
                    Path file = dir.resolve("scrape.txt");
                    Files.writeString(file, after);
                    Process check = new ProcessBuilder(promtool.toString(), "check", "metrics").redirectInput(file.toFile())
                            .redirectErrorStream(true).start();
                    String said = new String(check.getInputStream().readAllBytes());
                    assertTrue(check.waitFor(30, TimeUnit.SECONDS));
                    assertEquals(0, check.exitValue(), "promtool check metrics: " + said);
                } else {
                    System.out.println("MetricsTest: promtool not installed (package prometheus); exposition not checked by it");
                }
            }
            p.destroy();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    void badMetricsFlagsAreOneLine() throws Exception {
        try (var busy = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            String[][] cases = {
                {"rng", "--socket", dir.resolve("x.sock").toString(), "--metrics", "nonsense"},
                {"rng", "--socket", dir.resolve("x.sock").toString(), "--metrics", "127.0.0.1:99999"},
                {"rng", "--socket", dir.resolve("x.sock").toString(), "--metrics", "127.0.0.1:" + busy.getLocalPort()},
                {"rng", "--socket", dir.resolve("x.sock").toString(), "--metrics", "127.0.0.1:0", "+", "rng", "--socket",
                    dir.resolve("y.sock").toString(), "--metrics", "127.0.0.1:1"},
            };
            for (String[] args : cases) {
                Process p = start(args);
                assertTrue(p.waitFor(60, TimeUnit.SECONDS), String.join(" ", args));
                assertEquals(2, p.exitValue(), String.join(" ", args) + ": " + log());
                String said = log().lines().filter(l -> !l.contains(" INFO ") && !l.contains(" WARN ")).reduce("", (x, y) -> x + y + "\n");
                assertEquals(1, said.strip().lines().count(), "one line: " + log());
                assertFalse(Files.exists(dir.resolve("x.sock")), "nothing listens after a refused start: " + String.join(" ", args));
            }
        }
    }
}
