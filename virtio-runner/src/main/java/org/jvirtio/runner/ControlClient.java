package org.jvirtio.runner;

import java.io.IOException;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;

/**
 * {@code bin/vhost-user ctl --control PATH OPERATION ...}: a client of the control socket
 * ({@link ControlServer}) that prints for people, or the server's JSON with {@code --json}.
 * Netty's HTTP codec writes the request and parses the answer (on an embedded channel: the
 * bytes go over a plain JDK Unix socket channel), Jackson reads the JSON.
 */
public final class ControlClient {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String USAGE = """
            Usage: vhost-user ctl --control PATH [--json] [--timeout SECONDS] OPERATION
            Talks to a backend started with --control PATH (HTTP/JSON on that Unix socket; curl --unix-socket PATH works too).

            Operations:
              list                          The devices: id, device, state, queues, negotiated features, socket.
              show ID                       One device.
              add [--id ID] DEVICE FLAGS    Add a device, with the flags its command line takes (vhost-user DEVICE --help).
              remove ID                     Remove a device: its front-end is disconnected, its socket removed.
              stats ID                      A device's counters, per queue.
              reload ID                     What SIGHUP does for it (a disk re-reads its size; 'resize' is the same).
              log-level LEVEL [LOGGER]      Set a logger's level (trace, debug, info, warn, error, off; logger org.jvirtio).
              metrics                       The Prometheus exposition of every device's counters.

            Flags:
              --control PATH                The backend's control socket.
              --json                        Print the server's JSON as is.
              --timeout SECONDS             Give up waiting for an answer after this long (default 120).
            Exit code: 0 done, 1 refused by the backend (the reason on stderr) or not reachable, 2 a bad command line.
            """;

    private ControlClient() {
    }

    /** An answer: the HTTP status and the body. */
    public record Answer(int status, String contentType, String body) {
    }

    /**
     * {@code ctl ...} (the arguments after {@code ctl}).
     *
     * @return the exit code
     */
    public static int run(List<String> args, PrintStream out, PrintStream err) {
        Path control = null;
        boolean json = false;
        int timeout = 120;
        int i = 0;
        try {
            for (; i < args.size() && args.get(i).startsWith("-"); i++) {
                String a = args.get(i);
                switch (a) {
                    case "-h", "--help" -> {
                        out.print(USAGE);
                        out.flush();
                        return 0;
                    }
                    case "--json" -> json = true;
                    case "--control" -> control = Path.of(value(args, ++i, a));
                    case "--timeout" -> {
                        try {
                            timeout = Integer.parseInt(value(args, ++i, a));
                        } catch (NumberFormatException e) {
                            throw new IllegalArgumentException("--timeout needs a number of seconds");
                        }
                        if (timeout < 1 || timeout > 3600) {
                            throw new IllegalArgumentException("--timeout must be in [1, 3600] seconds");
                        }
                    }
                    default -> throw new IllegalArgumentException("unknown flag " + a);
                }
            }
            if (control == null) {
                throw new IllegalArgumentException("missing --control PATH");
            }
            if (i == args.size()) {
                throw new IllegalArgumentException("name an operation: list, show, add, remove, stats, reload, log-level, metrics");
            }
        } catch (IllegalArgumentException e) {
            return VhostUserRunner.refuse(err, "ctl", e.getMessage());
        }
        String op = args.get(i);
        List<String> rest = args.subList(i + 1, args.size());
        Answer a;
        try {
            a = switch (op) {
                case "list" -> {
                    none(op, rest);
                    yield request(control, "GET", "/devices", null, timeout);
                }
                case "show" -> request(control, "GET", "/devices/" + id(op, rest), null, timeout);
                case "stats" -> request(control, "GET", "/devices/" + id(op, rest) + "/stats", null, timeout);
                case "remove" -> request(control, "DELETE", "/devices/" + id(op, rest), null, timeout);
                case "reload", "resize" -> request(control, "POST", "/devices/" + id(op, rest) + "/reload", null, timeout);
                case "metrics" -> {
                    none(op, rest);
                    yield request(control, "GET", "/metrics", null, timeout);
                }
                case "log-level" -> {
                    if (rest.isEmpty() || rest.size() > 2) {
                        throw new IllegalArgumentException("log-level LEVEL [LOGGER]");
                    }
                    ObjectNode body = JSON.createObjectNode();
                    body.put("level", rest.get(0));
                    if (rest.size() == 2) {
                        body.put("logger", rest.get(1));
                    }
                    yield request(control, "PUT", "/log-level", body, timeout);
                }
                case "add" -> request(control, "POST", "/devices", addBody(rest), timeout);
                default -> throw new IllegalArgumentException("no operation '" + op + "': list, show, add, remove, stats, reload, log-level, metrics");
            };
        } catch (IllegalArgumentException e) {
            return VhostUserRunner.refuse(err, "ctl", e.getMessage());
        } catch (IOException e) {
            err.println("ctl: " + control + ": " + e.getMessage());
            err.flush();
            return 1;
        }
        if (a.status() >= 300) {
            err.println("ctl: " + op + ": " + errorOf(a));
            err.flush();
            return 1;
        }
        if (json || op.equals("metrics")) {
            out.print(a.body().endsWith("\n") ? a.body() : a.body() + "\n");
        } else {
            print(op, a, out);
        }
        out.flush();
        return 0;
    }

    private static String value(List<String> args, int i, String flag) {
        if (i >= args.size()) {
            throw new IllegalArgumentException(flag + " needs a value");
        }
        return args.get(i);
    }

    private static void none(String op, List<String> rest) {
        if (!rest.isEmpty()) {
            throw new IllegalArgumentException(op + " takes no arguments, got '" + rest.get(0) + "'");
        }
    }

    private static String id(String op, List<String> rest) {
        if (rest.size() != 1) {
            throw new IllegalArgumentException(op + " ID: name one device (ctl list shows the ids)");
        }
        String id = rest.get(0);
        if (!DeviceSet.ID.matcher(id).matches()) {
            throw new IllegalArgumentException("'" + DeviceSet.shorten(id) + "' is not a device id");
        }
        return id;
    }

    private static ObjectNode addBody(List<String> rest) {
        ObjectNode body = JSON.createObjectNode();
        int i = 0;
        if (rest.size() >= 2 && rest.get(0).equals("--id")) {
            body.put("id", rest.get(1));
            i = 2;
        }
        if (i == rest.size() || rest.get(i).startsWith("-")) {
            throw new IllegalArgumentException("add [--id ID] DEVICE FLAGS: name a device");
        }
        body.put("device", rest.get(i));
        var flags = body.putArray("flags");
        for (String f : rest.subList(i + 1, rest.size())) {
            flags.add(f);
        }
        return body;
    }

    private static String errorOf(Answer a) {
        try {
            JsonNode e = JSON.readTree(a.body()).get("error");
            if (e != null && e.isTextual()) {
                return e.textValue();
            }
        } catch (IOException | RuntimeException ignored) {
            // not JSON: the status says it
        }
        return "HTTP " + a.status();
    }

    private static void print(String op, Answer a, PrintStream out) {
        JsonNode o;
        try {
            o = JSON.readTree(a.body());
        } catch (IOException e) {
            out.print(a.body());
            return;
        }
        switch (op) {
            case "list" -> {
                List<String[]> rows = new ArrayList<>();
                rows.add(new String[] {"ID", "DEVICE", "STATE", "QUEUES", "FEATURES", "SOCKET"});
                for (JsonNode d : o.path("devices")) {
                    rows.add(new String[] {d.path("id").asText(), d.path("device").asText(), d.path("state").asText(),
                        d.path("queues").asText(), d.path("features").asText("-"), d.path("socket").asText()});
                }
                int[] w = new int[6];
                for (String[] r : rows) {
                    for (int c = 0; c < 6; c++) {
                        w[c] = Math.max(w[c], r[c].length());
                    }
                }
                for (String[] r : rows) {
                    StringBuilder b = new StringBuilder();
                    for (int c = 0; c < 6; c++) {
                        b.append(c == 5 ? r[c] : String.format("%-" + (w[c] + 2) + "s", r[c]));
                    }
                    out.println(b.toString().stripTrailing());
                }
            }
            case "show" -> o.fields().forEachRemaining(f -> out.println(f.getKey() + ": " + f.getValue().asText()));
            case "add" -> out.println("added " + o.path("id").asText() + ": " + o.path("device").asText() + " on " + o.path("socket").asText());
            case "remove" -> out.println("removed " + o.path("removed").asText());
            case "stats" -> {
                for (JsonNode q : o.path("queues")) {
                    out.println(o.path("id").asText() + " q" + q.path("queue").asText() + ": requests=" + q.path("requests").asText()
                            + " bytes=" + q.path("bytes").asText() + " to-guest=" + q.path("bytesToGuest").asText()
                            + " errors=" + q.path("errors").asText() + kinds(q.path("errorsByKind"))
                            + " rests=" + q.path("rests").asText() + " in-flight=" + q.path("inFlight").asText()
                            + " wakeups=" + q.path("wakeups").asText() + " poll-hits=" + q.path("pollHits").asText()
                            + (q.path("violations").asLong() > 0 ? " violations=" + q.path("violations").asText() : "")
                            + (q.path("resubmitted").asLong() > 0 ? " resubmitted=" + q.path("resubmitted").asText() : "")
                            + (q.has("latencyP50Micros") ? " latency p50<=" + bound(q.path("latencyP50Micros").asLong())
                            + " p99<=" + bound(q.path("latencyP99Micros").asLong()) + " mean=" + q.path("latencyMeanMicros").asText() + "us" : ""));
                }
                out.println(o.path("id").asText() + ": connections=" + o.path("connections").asText()
                        + (o.has("device") ? " " + o.path("device").asText() : ""));
            }
            case "reload", "resize" -> out.println(o.path("id").asText() + ": "
                    + (o.path("message").isTextual() ? o.path("message").asText() : "reloaded"));
            case "log-level" -> out.println(o.path("logger").asText() + ": " + o.path("level").asText());
            default -> out.println(a.body());
        }
    }

    /** {@code " (io=1 unsupported=2)"} for the kinds that happened, or nothing. */
    private static String kinds(JsonNode byKind) {
        StringBuilder b = new StringBuilder();
        byKind.fields().forEachRemaining(f -> {
            if (f.getValue().asLong() > 0) {
                b.append(b.isEmpty() ? " (" : " ").append(f.getKey()).append('=').append(f.getValue().asText());
            }
        });
        return b.isEmpty() ? "" : b.append(')').toString();
    }

    private static String bound(long micros) {
        return micros < 0 ? "4s+" : micros + "us";
    }

    /** The response the codec has decoded whole, or null. */
    private static Answer answer(EmbeddedChannel http) {
        FullHttpResponse res = http.readInbound();
        if (res == null) {
            return null;
        }
        try {
            return new Answer(res.status().code(), res.headers().get(HttpHeaderNames.CONTENT_TYPE, ""), res.content().toString(StandardCharsets.UTF_8));
        } finally {
            res.release();
        }
    }

    /**
     * One request to the control socket at {@code control} ({@code body} as JSON, or none) and
     * its answer. The connection is closed after it.
     *
     * @throws IOException when the socket does not answer (not there, refused, closed early, or no answer within {@code timeoutSeconds})
     */
    public static Answer request(Path control, String method, String uri, JsonNode body, int timeoutSeconds) throws IOException {
        byte[] content = body == null ? new byte[0] : JSON.writeValueAsBytes(body);
        FullHttpRequest req = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.valueOf(method), uri, Unpooled.wrappedBuffer(content));
        req.headers().set(HttpHeaderNames.HOST, "localhost");
        req.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        if (body != null) {
            req.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
        }
        HttpUtil.setContentLength(req, content.length);
        EmbeddedChannel http = new EmbeddedChannel(new HttpClientCodec(), new HttpObjectAggregator(64 << 20));
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().unstarted(r));
        AtomicBoolean timedOut = new AtomicBoolean();
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            timer.schedule(() -> {
                timedOut.set(true);
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // closing to wake the read
                }
            }, timeoutSeconds, TimeUnit.SECONDS);
            try {
                ch.connect(UnixDomainSocketAddress.of(control));
            } catch (IOException e) {
                throw new IOException("cannot connect (is the backend running with --control " + control + "?): " + e.getMessage(), e);
            }
            http.writeOutbound(req);
            for (ByteBuf b; (b = http.readOutbound()) != null; ) {
                try {
                    ByteBuffer nio = ByteBuffer.wrap(ByteBufUtil.getBytes(b));
                    while (nio.hasRemaining()) {
                        ch.write(nio);
                    }
                } finally {
                    b.release();
                }
            }
            ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
            while (true) {
                Answer a = answer(http);
                if (a != null) {
                    return a;
                }
                buf.clear();
                int n;
                try {
                    n = ch.read(buf);
                } catch (IOException e) {
                    throw timedOut.get() ? new IOException("no answer within " + timeoutSeconds + " s") : e;
                }
                if (n < 0) {
                    http.finish(); // a response ended by the close
                    a = answer(http);
                    if (a != null) {
                        return a;
                    }
                    throw new IOException("the backend closed the connection without an answer");
                }
                buf.flip();
                http.writeInbound(Unpooled.wrappedBuffer(buf.array(), 0, buf.limit()).copy());
            }
        } finally {
            timer.shutdownNow();
            http.finishAndReleaseAll();
        }
    }
}
