package org.jvirtio.runner;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import org.jvirtio.api.QueueStats;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What each request of the control socket does ({@link ControlServer} carries the bytes): the
 * resources, their JSON (Jackson), and which requests are changes (run one at a time on the
 * change thread) or reads (answered at once from the devices' snapshot).
 */
final class ControlApi {
    /** How long a list waits for a device's control thread (busy answering a drain) before saying "busy". */
    private static final long STATUS_WAIT_MILLIS = 1000;
    private static final Logger LOG = LoggerFactory.getLogger(ControlApi.class);
    /** Jackson, refusing a body that names a field twice. */
    private static final ObjectMapper JSON = com.fasterxml.jackson.databind.json.JsonMapper.builder()
            .enable(com.fasterxml.jackson.core.StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

    private final DeviceSet devices;
    private final Metrics metrics;
    private final ThreadPoolExecutor changes;

    ControlApi(DeviceSet devices, Metrics metrics, ThreadPoolExecutor changes) {
        this.devices = devices;
        this.metrics = metrics;
        this.changes = changes;
    }

    /** A reply: status and a JSON body, or a text body of its own type (the metrics exposition). */
    record Reply(HttpResponseStatus status, byte[] body, String contentType, String allow) {
        static Reply json(HttpResponseStatus status, JsonNode body) {
            try {
                return new Reply(status, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(body), "application/json", null);
            } catch (JacksonException e) {
                throw new IllegalStateException(e);
            }
        }

        static Reply error(HttpResponseStatus status, String message) {
            ObjectNode o = JSON.createObjectNode();
            String m = message == null ? status.reasonPhrase() : message.replace('\n', ' ');
            o.put("error", m.length() > 500 ? m.substring(0, 500) + "..." : m); // a client's text echoed back stays one short line
            return json(status, o);
        }

        static Reply notAllowed(String allow) {
            Reply r = error(HttpResponseStatus.METHOD_NOT_ALLOWED, "method not allowed here; allowed: " + allow);
            return new Reply(r.status, r.body, r.contentType, allow);
        }
    }

    static Reply failure(Throwable t) {
        if (t instanceof java.util.concurrent.CompletionException && t.getCause() != null) {
            t = t.getCause();
        }
        if (t instanceof NoSuchElementException) {
            return Reply.error(HttpResponseStatus.NOT_FOUND, t.getMessage());
        }
        if (t instanceof DeviceSet.Conflict || t instanceof IllegalStateException) {
            return Reply.error(HttpResponseStatus.CONFLICT, t.getMessage());
        }
        if (t instanceof IllegalArgumentException || t instanceof IOException) {
            return Reply.error(HttpResponseStatus.BAD_REQUEST, t.getMessage());
        }
        LOG.warn("control: request failed", t);
        return Reply.error(HttpResponseStatus.INTERNAL_SERVER_ERROR, t.toString());
    }

    /** The reply to one request; changes go to the change thread, reads are answered here. */
    CompletableFuture<Reply> route(HttpMethod method, String uri, byte[] body, String accept) {
        List<String> parts = new ArrayList<>();
        for (String p : uri.split("/")) {
            if (!p.isEmpty()) {
                parts.add(p);
            }
        }
        if (parts.size() == 1 && parts.get(0).equals("devices")) {
            if (method.equals(HttpMethod.GET)) {
                return list();
            }
            if (method.equals(HttpMethod.POST)) {
                AddRequest add = AddRequest.parse(body); // a bad body is refused here, before it waits for the change thread
                return change(() -> describe(devices.add(add.id, add.args)).thenApply(o -> Reply.json(HttpResponseStatus.CREATED, o)));
            }
            return done(Reply.notAllowed("GET, POST"));
        }
        if (parts.size() == 2 && parts.get(0).equals("devices")) {
            String id = parts.get(1);
            if (method.equals(HttpMethod.GET)) {
                return describe(entry(id)).thenApply(o -> Reply.json(HttpResponseStatus.OK, o));
            }
            if (method.equals(HttpMethod.DELETE)) {
                return change(() -> {
                    devices.remove(id);
                    ObjectNode o = JSON.createObjectNode();
                    o.put("removed", id);
                    return done(Reply.json(HttpResponseStatus.OK, o));
                });
            }
            return done(Reply.notAllowed("GET, DELETE"));
        }
        if (parts.size() == 3 && parts.get(0).equals("devices") && parts.get(2).equals("stats")) {
            return method.equals(HttpMethod.GET) ? done(Reply.json(HttpResponseStatus.OK, stats(entry(parts.get(1)))))
                    : done(Reply.notAllowed("GET"));
        }
        if (parts.size() == 3 && parts.get(0).equals("devices") && parts.get(2).equals("reload")) {
            if (!method.equals(HttpMethod.POST)) {
                return done(Reply.notAllowed("POST"));
            }
            String id = parts.get(1);
            return change(() -> {
                String line = entry(id).served().reload();
                ObjectNode o = JSON.createObjectNode();
                o.put("id", id);
                o.put("message", line);
                return done(Reply.json(HttpResponseStatus.OK, o));
            });
        }
        if (parts.size() == 1 && parts.get(0).equals("log-level")) {
            if (!method.equals(HttpMethod.PUT)) {
                return done(Reply.notAllowed("PUT"));
            }
            JsonNode o = object(body, Map.of("level", true, "logger", false));
            String logger = o.has("logger") ? text(o, "logger") : "org.jvirtio";
            String level = text(o, "level");
            return change(() -> {
                ObjectNode r = JSON.createObjectNode();
                r.put("logger", logger);
                r.put("level", LogLevels.set(logger, level));
                return done(Reply.json(HttpResponseStatus.OK, r));
            });
        }
        if (parts.size() == 1 && parts.get(0).equals("metrics")) {
            if (!method.equals(HttpMethod.GET)) {
                return done(Reply.notAllowed("GET"));
            }
            String type = Metrics.contentType(accept);
            return done(new Reply(HttpResponseStatus.OK, metrics.scrape(type).getBytes(StandardCharsets.UTF_8), type, null));
        }
        return done(Reply.error(HttpResponseStatus.NOT_FOUND, "no resource " + DeviceSet.shorten(uri)
                + " (there are /devices, /devices/ID, /devices/ID/stats, /devices/ID/reload, /log-level, /metrics)"));
    }

    private static CompletableFuture<Reply> done(Reply r) {
        return CompletableFuture.completedFuture(r);
    }

    /** A change, run on the change thread after those before it. */
    private interface Change {
        CompletableFuture<Reply> run() throws IOException;
    }

    private CompletableFuture<Reply> change(Change c) {
        CompletableFuture<Reply> r = new CompletableFuture<>();
        try {
            changes.execute(() -> {
                try {
                    c.run().whenComplete((v, t) -> {
                        if (t != null) {
                            r.completeExceptionally(t);
                        } else {
                            r.complete(v);
                        }
                    });
                } catch (IOException | RuntimeException e) {
                    r.complete(failure(e));
                }
            });
        } catch (RejectedExecutionException e) {
            r.complete(Reply.error(HttpResponseStatus.SERVICE_UNAVAILABLE, "the process is stopping"));
        }
        return r;
    }

    private DeviceSet.Entry entry(String id) {
        DeviceSet.Entry e = devices.get(id);
        if (e == null) {
            throw new NoSuchElementException("no device with id '" + DeviceSet.shorten(id) + "'");
        }
        return e;
    }

    /** POST /devices: {"device": NAME, "flags": [...], "id": ID}. */
    private record AddRequest(String id, List<String> args) {
        static AddRequest parse(byte[] body) {
            JsonNode o = object(body, Map.of("device", true, "flags", false, "id", false));
            List<String> args = new ArrayList<>();
            args.add(text(o, "device"));
            JsonNode flags = o.get("flags");
            if (flags != null) {
                if (!flags.isArray()) {
                    throw new IllegalArgumentException("\"flags\" must be an array of strings, as on the command line");
                }
                if (flags.size() > 256) {
                    throw new IllegalArgumentException("\"flags\" has " + flags.size() + " elements; at most 256");
                }
                for (JsonNode f : flags) {
                    if (!f.isTextual()) {
                        throw new IllegalArgumentException("\"flags\" must be an array of strings, as on the command line");
                    }
                    args.add(f.textValue());
                }
            }
            return new AddRequest(o.has("id") ? text(o, "id") : null, args);
        }
    }

    /** The body as a JSON object with only the {@code fields} named (true: required). */
    private static JsonNode object(byte[] body, Map<String, Boolean> fields) {
        JsonNode o;
        try {
            o = JSON.readTree(body);
        } catch (IOException e) {
            String m = e.getMessage() == null ? "" : e.getMessage().lines().findFirst().orElse("");
            throw new IllegalArgumentException("the body is not JSON: " + m);
        }
        if (o == null || !o.isObject()) {
            throw new IllegalArgumentException("the body must be a JSON object with " + String.join(", ", fields.keySet()));
        }
        for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!fields.containsKey(f)) {
                throw new IllegalArgumentException("unknown field \"" + DeviceSet.shorten(f) + "\"; known: " + String.join(", ", fields.keySet()));
            }
        }
        for (Map.Entry<String, Boolean> f : fields.entrySet()) {
            if (f.getValue() && !o.has(f.getKey())) {
                throw new IllegalArgumentException("missing field \"" + f.getKey() + "\"");
            }
        }
        return o;
    }

    private static String text(JsonNode o, String field) {
        JsonNode v = o.get(field);
        if (v == null || !v.isTextual()) {
            throw new IllegalArgumentException("\"" + field + "\" must be a string");
        }
        return v.textValue();
    }

    private CompletableFuture<Reply> list() {
        List<CompletableFuture<ObjectNode>> all = new ArrayList<>();
        for (DeviceSet.Entry e : devices.entries()) {
            all.add(describe(e));
        }
        return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).thenApply(v -> {
            ObjectNode o = JSON.createObjectNode();
            ArrayNode a = o.putArray("devices");
            for (CompletableFuture<ObjectNode> f : all) {
                a.add(f.join());
            }
            return Reply.json(HttpResponseStatus.OK, o);
        });
    }

    /** A device's description: what it is, where it listens, and its connection's state (read on its control thread). */
    private static CompletableFuture<ObjectNode> describe(DeviceSet.Entry e) {
        Serving.Served<?> d = e.served();
        VhostUserBackend t = d.running().transport();
        return t.status().completeOnTimeout(null, STATUS_WAIT_MILLIS, TimeUnit.MILLISECONDS).thenApply(s -> {
            ObjectNode o = JSON.createObjectNode();
            o.put("id", e.id());
            o.put("device", d.name());
            o.put("socket", d.options().socket.toAbsolutePath().toString());
            String what = d.describe();
            if (!what.isEmpty()) {
                o.put("describe", what);
            }
            o.put("queues", t.queueStats().length);
            if (s == null) {
                o.put("state", "busy"); // its control thread is answering a front-end (a drain, up to the drain limit)
            } else {
                o.put("state", s.needsReset() ? "needs-reset" : s.connected() ? "connected" : "listening");
                if (s.connected()) {
                    o.put("features", "0x" + Long.toHexString(s.features()));
                    o.put("status", s.deviceStatus());
                }
                o.put("connections", s.connections());
                if (s.lastDisconnectReason() != null) {
                    o.put("lastDisconnect", s.lastDisconnectReason());
                }
            }
            return o;
        });
    }

    private static ObjectNode stats(DeviceSet.Entry e) {
        Serving.Served<?> d = e.served();
        ObjectNode o = JSON.createObjectNode();
        o.put("id", e.id());
        ArrayNode queues = o.putArray("queues");
        QueueStats[] stats = d.running().transport().queueStats();
        for (int q = 0; q < stats.length; q++) {
            ObjectNode s = queues.addObject();
            s.put("queue", q);
            s.put("requests", stats[q].requests());
            s.put("bytes", stats[q].bytes());
            s.put("bytesToGuest", stats[q].bytesToGuest());
            s.put("errors", stats[q].errors());
            ObjectNode kinds = s.putObject("errorsByKind");
            for (QueueStats.ErrorKind k : QueueStats.ErrorKind.values()) {
                kinds.put(k.label(), stats[q].errors(k));
            }
            s.put("rests", stats[q].rests());
            s.put("inFlight", stats[q].inFlight());
            s.put("wakeups", stats[q].wakeups());
            s.put("pollHits", stats[q].pollHits());
            s.put("violations", stats[q].violations());
            s.put("resubmitted", stats[q].resubmitted());
            long p50 = stats[q].latencyQuantileNanos(0.5);
            if (p50 >= 0) {
                // bucket bounds: the true quantile is at most this, and above half of it
                s.put("latencyP50Micros", micros(p50));
                s.put("latencyP99Micros", micros(stats[q].latencyQuantileNanos(0.99)));
                long n = 0;
                for (int i = 0; i < QueueStats.BUCKETS; i++) {
                    n += stats[q].latencyBucket(i);
                }
                s.put("latencyMeanMicros", Math.round(stats[q].latencySumNanos() / 1e3 / n * 10) / 10.0);
            }
        }
        o.put("connections", d.running().transport().connectionCount());
        String own = d.deviceStats();
        if (own != null) {
            o.put("device", own);
        }
        return o;
    }

    /** A quantile's bound in microseconds (1,024 ns each, as the buckets count them); -1 for one over the last bound. */
    private static long micros(long nanos) {
        return nanos == Long.MAX_VALUE ? -1 : nanos >>> 10;
    }
}
