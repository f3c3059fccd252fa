package org.jvirtio.examples.runner;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.examples.blk.BlkClient;
import org.jvirtio.runner.ControlClient;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The control socket ({@code --control PATH}) of a real runner process: devices added, used and
 * removed while another device serves verified I/O; what a process holds (fds, guest memory
 * mappings, threads) back where it was after 50 devices came and went; hostile requests refused
 * with one line and nothing changed; the {@code ctl} client's lines and exit codes.
 */
@org.junit.jupiter.api.Timeout(value = 3, unit = TimeUnit.MINUTES) // a hang is a failure (a stalled client never closed, say)
class ControlSocketTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private Process backend;

    private Path ctl() {
        return dir.resolve("ctl.sock");
    }

    private Process start(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-Dguice_bytecode_gen_option=DISABLED",
                "-cp", System.getProperty("java.class.path"), "org.jvirtio.runner.VhostUserRunner"));
        cmd.addAll(List.of(args));
        backend = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("backend.log").toFile()).start();
        Await.await(() -> {
            assertTrue(backend.isAlive(), "the backend ended: " + log());
            return log().contains("control: listening on ");
        }, Duration.ofSeconds(30), () -> "the control socket did not listen: " + log());
        return backend;
    }

    @AfterEach
    void stop() throws Exception {
        if (backend != null) {
            backend.destroy();
            if (!backend.waitFor(20, TimeUnit.SECONDS)) {
                backend.destroyForcibly();
                fail("SIGTERM did not end the backend: " + log());
            }
        }
    }

    private String log() throws Exception {
        return Files.readString(dir.resolve("backend.log"));
    }

    private ControlClient.Answer call(String method, String uri, JsonNode body) throws Exception {
        return ControlClient.request(ctl(), method, uri, body, 60);
    }

    private JsonNode ok(ControlClient.Answer a) throws Exception {
        assertTrue(a.status() < 300, "HTTP " + a.status() + ": " + a.body());
        return JSON.readTree(a.body());
    }

    private static ObjectNode add(String id, String device, String... flags) {
        ObjectNode o = JSON.createObjectNode();
        if (id != null) {
            o.put("id", id);
        }
        o.put("device", device);
        var f = o.putArray("flags");
        for (String s : flags) {
            f.add(s);
        }
        return o;
    }

    private List<String> ids() throws Exception {
        List<String> ids = new ArrayList<>();
        for (JsonNode d : ok(call("GET", "/devices", null)).get("devices")) {
            ids.add(d.get("id").asText());
        }
        return ids;
    }

    /** Writes and reads back {@code rounds} random 4 KiB blocks through {@code c}, each verified. */
    private static void verifiedIo(BlkClient c, Random rnd, int rounds) throws Exception {
        byte[] data = new byte[4096];
        long sectors = c.capacitySectors();
        for (int i = 0; i < rounds; i++) {
            rnd.nextBytes(data);
            long sector = (rnd.nextLong(sectors / 8)) * 8;
            c.put(0, data);
            assertEquals(VirtioBlk.S_OK, status(c, VirtioBlk.T_OUT, sector));
            c.put(0, new byte[4096]);
            assertEquals(VirtioBlk.S_OK, status(c, VirtioBlk.T_IN, sector));
            assertArrayEquals(data, c.get(0, 4096), "read back at sector " + sector);
        }
    }

    private static int status(BlkClient c, int type, long sector) throws Exception {
        c.submit(0, type, sector, 4096);
        c.flushSubmissions();
        int[] st = {-1};
        assertEquals(1, c.reap((t, s, n) -> st[0] = s, 10_000), "an answer within 10 s");
        return st[0];
    }

    /** A device serving verified I/O on its own thread until stopped; its first failure is kept. */
    private static final class Load implements AutoCloseable {
        final AtomicLong rounds = new AtomicLong();
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        private volatile boolean stop;
        private final Thread thread;

        Load(Path socket, long seed) {
            thread = Thread.ofPlatform().name("load " + socket.getFileName()).start(() -> {
                try (BlkClient c = new BlkClient(socket, 4, 4096)) {
                    Random rnd = new Random(seed);
                    while (!stop) {
                        verifiedIo(c, rnd, 1);
                        rounds.incrementAndGet();
                    }
                } catch (Throwable t) {
                    failure.set(t);
                }
            });
        }

        /** Waits until it has done {@code more} rounds beyond now (it is alive and well). */
        void advances(long more) throws Exception {
            long target = rounds.get() + more;
            Await.await(() -> {
                if (failure.get() != null) {
                    throw new AssertionError("the load failed", failure.get());
                }
                return rounds.get() >= target;
            }, Duration.ofSeconds(30), () -> "the load stalled at " + rounds.get());
        }

        @Override
        public void close() {
            stop = true;
            try {
                thread.join(30_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for the load to end", e);
            }
            if (failure.get() != null) {
                throw new AssertionError("the load failed", failure.get());
            }
        }
    }

    /** What the backend process holds: open fds, mappings of guest memory (memfds), threads. */
    private record Holdings(long fds, long memfdMappings, long threads) {
        static Holdings of(long pid) throws Exception {
            long fds;
            try (var s = Files.list(Path.of("/proc", Long.toString(pid), "fd"))) {
                fds = s.count();
            }
            long maps = Files.readAllLines(Path.of("/proc", Long.toString(pid), "maps")).stream().filter(l -> l.contains("/memfd:")).count();
            long threads;
            try (var s = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
                threads = s.count();
            }
            return new Holdings(fds, maps, threads);
        }

        /** The holdings once they stop changing (the same in two readings 200 ms apart; at most 10 s). */
        static Holdings settled(long pid) throws Exception {
            Holdings last = of(pid);
            for (int i = 0; i < 50; i++) {
                Thread.sleep(200);
                Holdings now = of(pid);
                if (now.equals(last)) {
                    return now;
                }
                last = now;
            }
            return last;
        }
    }

    @Test
    void fiftyDevicesAddedUsedAndRemovedWhileAnotherServesLeaveNothingBehind() throws Exception {
        Path served = dir.resolve("served.sock");
        Process p = start("--control", ctl().toString(), "blk", "--socket", served.toString(), "--ram", "8M");
        long pid = p.pid();
        assertEquals(List.of("blk0"), ids());
        try (Load load = new Load(served, 1)) {
            load.advances(20);
            // Scraped while the load runs: the served disk's counter moves, and promtool accepts it.
            double first = requests(call("GET", "/metrics", null).body(), "blk0");
            load.advances(20);
            String scrape = call("GET", "/metrics", null).body();
            assertTrue(requests(scrape, "blk0") >= first + 40, first + " then " + requests(scrape, "blk0"));
            promtool(scrape);
            // Warm up what a first add, connection and list load once (classes and the jars they
            // come from, the I/O thread's buffers, the list's timeout thread).
            Path warmImage = dir.resolve("warm.img");
            Files.write(warmImage, new byte[1 << 20]);
            ok(call("POST", "/devices", add("warm", "blk", "--socket", dir.resolve("warm.sock").toString(), "--ram", "1M")));
            ok(call("POST", "/devices", add("warm2", "blk", "--socket", dir.resolve("warm2.sock").toString(), "--image", warmImage.toString())));
            ok(call("POST", "/devices", add("warm3", "rng", "--socket", dir.resolve("warm3.sock").toString())));
            try (BlkClient c = new BlkClient(dir.resolve("warm.sock"), 4, 4096); BlkClient c2 = new BlkClient(dir.resolve("warm2.sock"), 4, 4096)) {
                verifiedIo(c, new Random(2), 5);
                verifiedIo(c2, new Random(2), 5);
                ids();
                ok(call("GET", "/devices/warm/stats", null));
            }
            for (String w : List.of("warm", "warm2", "warm3")) {
                ok(call("DELETE", "/devices/" + w, null));
            }
            Holdings before = Holdings.settled(pid); // the warm-up's connections closed

            List<Path> images = new ArrayList<>();
            for (int i = 0; i < 50; i++) {
                String id = "d" + i;
                Path sock = dir.resolve(id + ".sock");
                JsonNode added;
                if (i % 5 == 4) {
                    added = ok(call("POST", "/devices", add(id, "rng", "--socket", sock.toString())));
                } else if (i % 5 == 3) {
                    Path img = dir.resolve(id + ".img");
                    try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
                        f.setLength(1 << 20);
                    }
                    images.add(img);
                    added = ok(call("POST", "/devices", add(id, "blk", "--socket", sock.toString(), "--image", img.toString())));
                } else {
                    added = ok(call("POST", "/devices", add(id, "blk", "--socket", sock.toString(), "--ram", "1M")));
                }
                assertEquals(id, added.get("id").asText());
                assertEquals("listening", added.get("state").asText());
                assertTrue(Files.exists(sock));
                if (i % 10 == 3) {
                    // Verified I/O on one device while the next ones are added (and, from 20 on, others removed).
                    try (Load on = new Load(sock, i)) {
                        on.advances(10);
                        if (i >= 20) {
                            ok(call("DELETE", "/devices/d" + (i - 20), null));
                            assertFalse(Files.exists(dir.resolve("d" + (i - 20) + ".sock")));
                        }
                        ok(call("POST", "/devices", add("extra" + i, "rng", "--socket", dir.resolve("extra" + i + ".sock").toString())));
                        on.advances(10);
                        JsonNode state = ok(call("GET", "/devices/" + id, null));
                        assertEquals("connected", state.get("state").asText());
                        assertNotEquals("0x0", state.get("features").asText());
                        ok(call("DELETE", "/devices/extra" + i, null));
                        on.advances(10);
                    }
                    JsonNode stats = ok(call("GET", "/devices/" + id + "/stats", null));
                    assertTrue(stats.get("queues").get(0).get("requests").asLong() >= 60, stats.toString());
                }
            }
            assertEquals(1 + 50 - 3, ids().size(), ids().toString()); // d3, d13 and d23 went while d23, d33 and d43 were in use
            // A device in use removed under its front-end: the front-end sees the connection end.
            try (BlkClient c = new BlkClient(dir.resolve("d43.sock"), 4, 4096)) {
                verifiedIo(c, new Random(3), 3);
                ok(call("DELETE", "/devices/d43", null));
                assertThrows(java.io.IOException.class, () -> c.frontend().getStatus(), "the removed device's front-end is disconnected");
            }
            for (String id : ids()) {
                if (!id.equals("blk0")) {
                    ok(call("DELETE", "/devices/" + id, null));
                }
            }
            assertEquals(List.of("blk0"), ids());
            for (int i = 0; i < 50; i++) {
                assertFalse(Files.exists(dir.resolve("d" + i + ".sock")), "d" + i + "'s socket removed");
            }
            // Everything the 50 held is released: threads end and fds close as their devices stop.
            Await.await(() -> Holdings.of(pid).equals(before), Duration.ofSeconds(20),
                    () -> "the process holds " + Holdings.of(pid) + ", before the 50: " + before);
            load.advances(20); // and the device that served throughout never noticed
        }
        assertTrue(log().contains("blk (d0): removed"), log());
    }

    /** {@code jvirtio_queue_requests_total} of device {@code id}'s queue 0 in a scrape. */
    private static double requests(String exposition, String id) {
        return exposition.lines().filter(l -> l.startsWith("jvirtio_queue_requests_total{") && l.contains("id=\"" + id + "\""))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).findFirst()
                .orElseThrow(() -> new AssertionError("no requests of " + id + " in:\n" + exposition));
    }

    /** Debian's {@code promtool check metrics} on {@code exposition} (when installed; .ci/run installs it). */
    private void promtool(String exposition) throws Exception {
        Path promtool = Path.of("/usr/bin/promtool");
        if (!Files.isExecutable(promtool)) {
            System.out.println("ControlSocketTest: promtool not installed (package prometheus); exposition not checked by it");
            return;
        }
        Path file = dir.resolve("scrape.txt");
        Files.writeString(file, exposition);
        Process check = new ProcessBuilder(promtool.toString(), "check", "metrics").redirectInput(file.toFile()).redirectErrorStream(true).start();
        String said = new String(check.getInputStream().readAllBytes());
        assertTrue(check.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, check.exitValue(), "promtool check metrics: " + said);
        Files.delete(file);
    }

    /** Sends raw bytes on a new connection and returns what comes back until the backend closes it (or 20 s pass). */
    private String raw(byte[] request) throws Exception {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(ctl()));
            ByteBuffer out = ByteBuffer.wrap(request);
            try {
                while (out.hasRemaining()) {
                    ch.write(out);
                }
            } catch (java.io.IOException e) {
                // closed before all was read (a body over the limit): the answer is still there to read
            }
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            ByteBuffer b = ByteBuffer.allocate(8192);
            while (ch.read(b.clear()) > 0) {
                got.write(b.array(), 0, b.position());
            }
            return got.toString(StandardCharsets.UTF_8);
        }
    }

    private static String post(String uri, String body) {
        return "POST " + uri + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                + body.getBytes(StandardCharsets.UTF_8).length + "\r\nConnection: close\r\n\r\n" + body;
    }

    @Test
    void hostileRequestsAreRefusedWithOneLineAndChangeNothing() throws Exception {
        Path served = dir.resolve("served.sock");
        Path notSocket = dir.resolve("file");
        Files.writeString(notSocket, "x");
        start("--control", ctl().toString(), "blk", "--socket", served.toString(), "--ram", "8M");
        try (Load load = new Load(served, 7);
             SocketChannel stalled = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            load.advances(10);
            // Half a request, then nothing: disconnected after the idle limit; others are answered meanwhile.
            stalled.connect(UnixDomainSocketAddress.of(ctl()));
            stalled.write(ByteBuffer.wrap("POST /devices HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"dev".getBytes(StandardCharsets.US_ASCII)));
            long stalledAt = System.nanoTime();

            String sock = dir.resolve("x.sock").toString();
            Object[][] bad = {
                {"POST", "/devices", "{\"device\": \"blk\", ", 400, "the body is not JSON"},
                {"POST", "/devices", "[1, 2]", 400, "must be a JSON object"},
                {"POST", "/devices", "{\"flags\": []}", 400, "missing field \"device\""},
                {"POST", "/devices", "{\"device\": \"blk\", \"device\": \"rng\"}", 400, "Duplicate field"},
                {"POST", "/devices", "{\"device\": \"blk\", \"color\": 1}", 400, "unknown field \"color\""},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", 7]}", 400, "array of strings"},
                {"POST", "/devices", "{\"device\": \"floppy\", \"flags\": [\"--socket\", \"" + sock + "\"]}", 400, "no device named 'floppy'"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + sock + "\", \"--ram\", \"1M\", \"--colour\", \"red\"]}", 400, "unknown flag --colour"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + sock + "\", \"--ram\", \"1M\", \"--ram\", \"2M\"]}", 400, "--ram is given twice"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + served + "\", \"--ram\", \"1M\"]}", 409, "is device 'blk0''s"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + ctl() + "\", \"--ram\", \"1M\"]}", 409, "is the control socket"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + notSocket + "\", \"--ram\", \"1M\"]}", 400, "not a socket"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + sock + "\", \"--image\", \"" + dir.resolve("missing.img") + "\"]}", 400, "missing.img"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + sock + "\", \"--ram\", \"1M\", \"+\", \"rng\"]}", 400, "one device per request"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + sock + "\", \"--ram\", \"1M\", \"--metrics\", \"127.0.0.1:0\"]}", 400, "--metrics is the process's"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--socket\", \"" + sock + "\", \"--ram\", \"1M\", \"--iothreads\", \"4\"]}", 400, "share 1 I/O threads"},
                {"POST", "/devices", "{\"id\": \"blk0\", \"device\": \"rng\", \"flags\": [\"--socket\", \"" + sock + "\"]}", 409, "id 'blk0' exists"},
                {"POST", "/devices", "{\"id\": \"../x\", \"device\": \"rng\", \"flags\": [\"--socket\", \"" + sock + "\"]}", 400, "id '../x'"},
                {"POST", "/devices", "{\"device\": \"blk\", \"flags\": [\"--help\"]}", 400, "--help is not a device"},
                {"DELETE", "/devices/nosuch", "", 404, "no device with id 'nosuch'"},
                {"GET", "/devices/nosuch/stats", "", 404, "no device with id 'nosuch'"},
                {"POST", "/devices/nosuch/reload", "", 404, "no device with id 'nosuch'"},
                {"GET", "/reboot", "", 404, "no resource /reboot"},
                {"PATCH", "/devices", "", 405, "allowed: GET, POST"},
                {"PUT", "/log-level", "{\"level\": \"loud\"}", 400, "level 'loud'"},
                {"PUT", "/log-level", "{\"level\": \"info\", \"logger\": \"a b\"}", 400, "is not a logger name"},
            };
            for (Object[] b : bad) {
                String what = b[0] + " " + b[1] + " " + b[2];
                String answer = raw((b[0] + " " + b[1] + " HTTP/1.1\r\nHost: x\r\nContent-Length: "
                        + ((String) b[2]).getBytes(StandardCharsets.UTF_8).length + "\r\nConnection: close\r\n\r\n" + b[2]).getBytes(StandardCharsets.UTF_8));
                assertTrue(answer.startsWith("HTTP/1.1 " + b[3] + " "), what + " -> " + answer);
                String json = answer.substring(answer.indexOf("\r\n\r\n") + 4);
                String error = JSON.readTree(json).get("error").asText();
                assertTrue(error.contains((String) b[4]), what + " -> " + error);
                assertEquals(1, error.lines().count(), error);
            }
            // Not HTTP at all; headers and a body over the limits.
            assertTrue(raw("\u0000\u0001garbage\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1)).startsWith("HTTP/1.1 400 "));
            assertTrue(raw(("GET /devices HTTP/1.1\r\nX: " + "a".repeat(20_000) + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII))
                    .startsWith("HTTP/1.1 4"));
            String big = "{\"device\": \"blk\", \"flags\": [\"" + "a".repeat(100_000) + "\"]}";
            assertTrue(raw(post("/devices", big).getBytes(StandardCharsets.US_ASCII)).startsWith("HTTP/1.1 413 "));
            // 1,000 requests in a row, good and bad, on one kept-alive connection.
            try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                ch.connect(UnixDomainSocketAddress.of(ctl()));
                ByteBuffer in = ByteBuffer.allocate(1 << 16);
                StringBuilder seen = new StringBuilder();
                for (int i = 0; i < 1000; i++) {
                    String req = i % 2 == 0 ? "GET /devices HTTP/1.1\r\nHost: x\r\n\r\n"
                            : "POST /devices HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
                    ch.write(ByteBuffer.wrap(req.getBytes(StandardCharsets.US_ASCII)));
                    seen.setLength(0);
                    while (true) {
                        int n = ch.read(in.clear());
                        assertTrue(n > 0, "request " + i + " answered");
                        seen.append(new String(in.array(), 0, n, StandardCharsets.UTF_8));
                        int head = seen.indexOf("\r\n\r\n");
                        if (head >= 0) {
                            int len = Integer.parseInt(seen.substring(seen.indexOf("content-length: ") + 16, seen.indexOf("\r\n", seen.indexOf("content-length: "))));
                            if (seen.length() >= head + 4 + len) {
                                break;
                            }
                        }
                    }
                    assertTrue(seen.toString().startsWith(i % 2 == 0 ? "HTTP/1.1 200 " : "HTTP/1.1 400 "), i + ": " + seen);
                }
            }
            // A client that pipelines: three requests in one write are answered in order, each after
            // the one before it is done (the list sees the device the add made, the remove finds it).
            {
                String body = "{\"id\": \"piped\", \"device\": \"rng\", \"flags\": [\"--socket\", \"" + dir.resolve("piped.sock") + "\"]}";
                String three = "POST /devices HTTP/1.1\r\nHost: x\r\nContent-Length: " + body.length() + "\r\n\r\n" + body
                        + "GET /devices HTTP/1.1\r\nHost: x\r\n\r\n"
                        + "DELETE /devices/piped HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                String all = raw(three.getBytes(StandardCharsets.US_ASCII)); // one write; the last asks to close
                int created = all.indexOf("HTTP/1.1 201 ");
                int listed = all.indexOf("HTTP/1.1 200 ", created);
                int removed = all.indexOf("HTTP/1.1 200 ", listed + 1);
                assertTrue(created == 0 && listed > 0 && removed > listed, all);
                assertTrue(all.substring(listed, removed).contains("\"piped\""), "the list came after the add: " + all);
                assertTrue(all.substring(removed).contains("\"removed\" : \"piped\""), all);
            }
            // More connections than allowed at once: the extra ones are closed, the rest answered.
            List<SocketChannel> many = new ArrayList<>();
            try {
                for (int i = 0; i < 20; i++) {
                    SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX);
                    many.add(c);
                    c.connect(UnixDomainSocketAddress.of(ctl()));
                }
                int closed = 0;
                for (SocketChannel c : many) {
                    try {
                        c.write(ByteBuffer.wrap("GET /devices HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII)));
                        if (c.read(ByteBuffer.allocate(4096)) < 0) {
                            closed++;
                        }
                    } catch (java.io.IOException e) {
                        closed++;
                    }
                }
                assertTrue(closed >= 20 - 16 && closed < 20, closed + " of 20 closed");
            } finally {
                for (SocketChannel c : many) {
                    c.close();
                }
            }
            // The stalled client is disconnected once it has sent nothing for the idle limit.
            stalled.configureBlocking(true);
            assertEquals(-1, stalled.read(ByteBuffer.allocate(4096)), "a stalled half request is closed without an answer");
            assertTrue(System.nanoTime() - stalledAt >= TimeUnit.SECONDS.toNanos(9), "not before the idle limit");
            // Nothing changed: the one device, no socket left behind, and it served throughout.
            assertEquals(List.of("blk0"), ids());
            try (var files = Files.list(dir)) {
                List<String> names = files.map(f -> f.getFileName().toString()).sorted().toList();
                assertEquals(List.of("backend.log", "ctl.sock", "file", "served.sock"), names);
            }
            load.advances(10);
        }
    }

    private int ctlRun(ByteArrayOutputStream out, ByteArrayOutputStream err, String... args) {
        List<String> all = new ArrayList<>(List.of("ctl", "--control", ctl().toString()));
        all.addAll(Arrays.asList(args));
        return VhostUserRunner.run(VhostUserRunner.devices(), all.toArray(String[]::new), new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void theCtlClientAddsListsReloadsAndRemovesAndTheMetricsFollow() throws Exception {
        start("--control", ctl().toString());
        Path img = dir.resolve("a.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(4 << 20);
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Path a = dir.resolve("a.sock");
        assertEquals(0, ctlRun(out, err, "add", "--id", "vm1", "blk", "--socket", a.toString(), "--image", img.toString()), err.toString());
        assertEquals("added vm1: blk on " + a, out.toString().strip());
        out.reset();
        assertEquals(0, ctlRun(out, err, "add", "rng", "--socket", dir.resolve("b.sock").toString()), err.toString());
        assertEquals("added rng0: rng on " + dir.resolve("b.sock"), out.toString().strip());
        out.reset();
        try (BlkClient c = new BlkClient(a, 4, 4096)) {
            verifiedIo(c, new Random(5), 10);
            assertEquals(0, ctlRun(out, err, "list"), err.toString());
            List<String> lines = out.toString().lines().toList();
            assertEquals(3, lines.size(), out.toString());
            assertTrue(lines.get(0).startsWith("ID "), lines.get(0));
            assertTrue(lines.get(1).matches("vm1 +blk +connected +1 +0x[0-9a-f]+ +" + java.util.regex.Pattern.quote(a.toString())), lines.get(1));
            assertTrue(lines.get(2).matches("rng0 +rng +listening +1 +- +.*b\\.sock"), lines.get(2));
            out.reset();
            assertEquals(0, ctlRun(out, err, "stats", "vm1"), err.toString());
            assertTrue(out.toString().startsWith("vm1 q0: requests=20 bytes=81920 to-guest=40960 errors=0 rests=0 in-flight=0 wakeups="), out.toString());
            assertTrue(out.toString().matches("(?s).* latency p50<=\\d+us p99<=\\d+us mean=[0-9.]+us\n.*"), out.toString());
            out.reset();
            // The metrics on the control socket: the device's counters, labelled with its id.
            assertEquals(0, ctlRun(out, err, "metrics"), err.toString());
            assertTrue(out.toString().lines().anyMatch(l -> l.startsWith("jvirtio_queue_requests_total{") && l.contains("id=\"vm1\"")
                    && l.endsWith(" 20.0")), out.toString());
            assertTrue(out.toString().contains("jvirtio_devices 2.0"), out.toString());
            assertTrue(out.toString().lines().anyMatch(l -> l.startsWith("jvirtio_queue_request_latency_seconds_count{") && l.contains("id=\"vm1\"")
                    && l.endsWith(" 20")), out.toString());
            out.reset();
            // reload (resize): the grown image is announced to the connected front-end.
            try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
                f.setLength(8 << 20);
            }
            assertEquals(0, ctlRun(out, err, "resize", "vm1"), err.toString());
            assertEquals("vm1: capacity is " + (8 << 20) / 512 + " sectors", out.toString().strip());
            out.reset();
            // log-level reaches logback: the next front-end's messages are logged at DEBUG.
            assertEquals(0, ctlRun(out, err, "log-level", "debug"), err.toString());
            assertEquals("org.jvirtio: DEBUG", out.toString().strip());
            out.reset();
        }
        try (BlkClient c = new BlkClient(a, 4, 4096)) {
            verifiedIo(c, new Random(6), 1);
        }
        Await.await(() -> log().contains(" DEBUG "), Duration.ofSeconds(10), () -> "no DEBUG line after log-level debug: " + log());
        assertEquals(0, ctlRun(out, err, "--json", "show", "vm1"), err.toString());
        assertEquals("vm1", JSON.readTree(out.toString()).get("id").asText());
        out.reset();
        assertEquals(0, ctlRun(out, err, "remove", "vm1"), err.toString());
        assertEquals("removed vm1", out.toString().strip());
        out.reset();
        assertFalse(Files.exists(a));
        assertEquals(0, ctlRun(out, err, "metrics"), err.toString());
        assertFalse(out.toString().contains("id=\"vm1\""), "a removed device's series are gone: " + out);
        out.reset();
        // Refusals: one line on stderr; 1 when the backend refuses, 2 for a bad command line.
        String[][] refused = {{"remove", "vm1"}, {"add", "blk", "--socket", a.toString()}, {"log-level", "loud"}};
        for (String[] r : refused) {
            err.reset();
            assertEquals(1, ctlRun(out, err, r), String.join(" ", r));
            assertEquals(1, err.toString().strip().lines().count(), err.toString());
            assertTrue(err.toString().startsWith("ctl: " + r[0] + ": "), err.toString());
        }
        String[][] usage = {{}, {"frobnicate"}, {"remove"}, {"remove", "a", "b"}, {"list", "x"}, {"--timeout", "0", "list"}, {"add", "--id"}};
        for (String[] u : usage) {
            err.reset();
            assertEquals(2, ctlRun(out, err, u), String.join(" ", u));
            assertEquals(1, err.toString().strip().lines().count(), err.toString());
        }
        assertEquals("", out.toString());
        // No backend at the path: 1, and says so.
        err.reset();
        assertEquals(1, VhostUserRunner.run(VhostUserRunner.devices(), new String[] {"ctl", "--control", dir.resolve("none.sock").toString(), "list"},
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8)));
        assertTrue(err.toString().contains("cannot connect"), err.toString());
    }

    /** Process flags that cannot work: one line, exit 2, nothing listens. */
    @Test
    void aControlSocketThatCannotListenStartsNothing() throws Exception {
        Path file = dir.resolve("file");
        Files.writeString(file, "x");
        start("--control", ctl().toString()); // a control socket another process answers on
        Path a = dir.resolve("a.sock");
        String[][] bad = {
            {"--control", file.toString(), "blk", "--socket", a.toString(), "--ram", "1M"},
            {"--control", ctl().toString(), "blk", "--socket", a.toString(), "--ram", "1M"},
            {"--control", dir.resolve("no/such/dir/c.sock").toString()},
            {"--control", dir.resolve("c.sock").toString(), "blk", "--socket", dir.resolve("c.sock").toString(), "--ram", "1M"},
            {"--control", dir.resolve("c.sock").toString(), "--socket", a.toString()},
            {"--iothreads", "0", "--control", dir.resolve("c.sock").toString()},
            {"--metrics", "127.0.0.1:0"},
        };
        String[] expect = {"exists and is not a socket", "is in use", "does not exist", "is the control socket", "name a device first",
            "--iothreads must be in [1, 64]", "or give --control PATH"};
        for (int i = 0; i < bad.length; i++) {
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            int code = VhostUserRunner.run(VhostUserRunner.devices(), bad[i], new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
                    new PrintStream(err, true, StandardCharsets.UTF_8));
            assertEquals(2, code, String.join(" ", bad[i]));
            String e = err.toString(StandardCharsets.UTF_8).strip();
            assertEquals(1, e.lines().count(), e);
            assertTrue(e.contains(expect[i]), String.join(" ", bad[i]) + " -> " + e);
            assertFalse(Files.exists(a) || Files.exists(dir.resolve("c.sock")), "nothing listens after: " + String.join(" ", bad[i]));
        }
        assertEquals("x", Files.readString(file), "the file is left alone");
        assertEquals(List.of(), ids(), "the running backend's control socket still answers");
    }
}
