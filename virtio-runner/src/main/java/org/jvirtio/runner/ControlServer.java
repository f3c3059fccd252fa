package org.jvirtio.runner;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.epoll.EpollDomainSocketChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import org.jvirtio.api.QueueStats;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code --control PATH}: the process's control socket, HTTP/1.1 with JSON bodies on a Unix
 * socket, as Firecracker's and Cloud Hypervisor's APIs are (so {@code curl --unix-socket PATH}
 * is a client, and {@code bin/vhost-user ctl} is one that prints for people). Netty's HTTP codec
 * parses the requests and Jackson the bodies; this class only routes.
 *
 * <pre>
 * GET    /devices               the devices: id, device, socket, state, features, queues
 * POST   /devices               {"device": "blk", "flags": ["--socket", "...", ...], "id": "vm1"}: add one
 * GET    /devices/ID            one device
 * DELETE /devices/ID            remove it (front-end disconnected, rings drained, socket removed)
 * GET    /devices/ID/stats      its counters, per queue
 * POST   /devices/ID/reload     what SIGHUP does (a disk re-reads its size and tells the guest)
 * PUT    /log-level             {"level": "debug", "logger": "org.jvirtio"}
 * GET    /metrics               the Prometheus exposition (as --metrics serves it)
 * </pre>
 *
 * <p>Hostile or broken clients: a request that is not HTTP, a body that is not JSON or not the
 * expected object, an unknown resource or field, a body over {@value #MAX_BODY} bytes, or flags the
 * device refuses get a 4xx with {@code {"error": "one line"}} and change nothing. A client that
 * sends nothing for {@value #IDLE_SECONDS} s (half a request, or an idle connection) is
 * disconnected; more than {@value #MAX_CONNECTIONS} connections at once are refused. Each
 * connection has one request in hand at a time (it is not read meanwhile; requests a client
 * pipelined wait, at most 16, and are answered in order). Changes (add,
 * remove, reload, log level) run one at a time on a thread of their own, so a removal that
 * drains for seconds holds up neither reads nor the devices; the vhost-user sockets and the
 * devices' queues are on other threads entirely.
 */
final class ControlServer implements AutoCloseable {
    static final int MAX_BODY = 64 * 1024;
    static final int MAX_CONNECTIONS = 16;
    static final int IDLE_SECONDS = 10;
    /** How long a list waits for a device's control thread (busy answering a drain) before saying "busy". */
    private static final long STATUS_WAIT_MILLIS = 1000;
    private static final Logger LOG = LoggerFactory.getLogger(ControlServer.class);
    /** Jackson, refusing a body that names a field twice. */
    private static final ObjectMapper JSON = com.fasterxml.jackson.databind.json.JsonMapper.builder()
            .enable(com.fasterxml.jackson.core.StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

    private final Path path;
    private final long inode;
    private final DeviceSet devices;
    private final Metrics metrics;
    private final MultiThreadIoEventLoopGroup group;
    private final java.util.concurrent.ThreadPoolExecutor changes;
    private final AtomicInteger open = new AtomicInteger();
    private final Channel server;

    private ControlServer(Path path, long inode, DeviceSet devices, Metrics metrics, MultiThreadIoEventLoopGroup group,
                          java.util.concurrent.ThreadPoolExecutor changes, Channel server) {
        this.path = path;
        this.inode = inode;
        this.devices = devices;
        this.metrics = metrics;
        this.group = group;
        this.changes = changes;
        this.server = server;
    }

    /**
     * Creates the control socket (mode 0600, made in a private directory and renamed into place,
     * as the vhost-user sockets are). A stale socket at the path is replaced; one that another
     * process answers on, or a file that is not a socket, is refused. Requests are not read
     * until {@link #start}.
     */
    static ControlServer bind(Path path, DeviceSet devices, Metrics metrics) throws IOException {
        Path dir = path.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new IOException("--control " + path + ": directory " + dir + " does not exist");
        }
        if (Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            if (!Files.readAttributes(path, java.nio.file.attribute.BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).isOther()) {
                throw new IOException("--control " + path + " exists and is not a socket; refusing to replace it");
            }
            if (answers(path)) {
                throw new IOException("--control " + path + " is in use: another process answers on it");
            }
        }
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(1,
                (java.util.concurrent.ThreadFactory) r -> Thread.ofPlatform().name("jvirtio-ctl").daemon().unstarted(r),
                EpollIoHandler.newFactory());
        java.util.concurrent.ThreadPoolExecutor changes = new java.util.concurrent.ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS,
                new java.util.concurrent.LinkedBlockingQueue<>(), r -> Thread.ofPlatform().name("jvirtio-ctl-change").daemon().unstarted(r));
        Path privateDir = null;
        try {
            privateDir = Files.createTempDirectory(dir, ".ctl", PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            Path tmp = privateDir.resolve("s");
            ControlServer[] self = new ControlServer[1];
            Channel server = new ServerBootstrap().group(group).channel(EpollServerDomainSocketChannel.class)
                    .option(io.netty.channel.ChannelOption.AUTO_READ, false) // accepts once started
                    .childHandler(new ChannelInitializer<EpollDomainSocketChannel>() {
                        @Override
                        protected void initChannel(EpollDomainSocketChannel ch) {
                            self[0].accept(ch);
                        }
                    })
                    .bind(new DomainSocketAddress(tmp.toString())).sync().channel();
            Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-------"));
            Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            long inode = (Long) Files.getAttribute(path, "unix:ino", LinkOption.NOFOLLOW_LINKS);
            self[0] = new ControlServer(path, inode, devices, metrics, group, changes, server);
            devices.reserve(path);
            return self[0];
        } catch (IOException | RuntimeException e) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            changes.shutdownNow();
            throw new IOException("--control " + path + ": cannot listen: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            changes.shutdownNow();
            throw new IOException("interrupted while binding --control " + path, e);
        } finally {
            if (privateDir != null) {
                Files.deleteIfExists(privateDir.resolve("s"));
                Files.deleteIfExists(privateDir);
            }
        }
    }

    /** Whether something accepts connections on the socket at {@code path}. */
    private static boolean answers(Path path) {
        try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            return c.connect(UnixDomainSocketAddress.of(path));
        } catch (IOException e) {
            return false;
        }
    }

    Path path() {
        return path;
    }

    /** Starts answering. */
    void start() {
        server.config().setAutoRead(true);
    }

    private void accept(EpollDomainSocketChannel ch) {
        int now = open.incrementAndGet();
        ch.closeFuture().addListener(f -> open.decrementAndGet());
        if (now > MAX_CONNECTIONS) {
            LOG.warn("control: more than {} connections at once; refusing one", MAX_CONNECTIONS);
            ch.close();
            return;
        }
        ch.pipeline().addLast(new IdleStateHandler(IDLE_SECONDS, 0, 0, TimeUnit.SECONDS),
                new HttpServerCodec(4096, 8192, 8192),
                new Aggregator(),
                new Requests());
    }

    /**
     * The body limit: a request over it is answered 413, and the rest the client sends is read
     * and dropped until it closes (or goes idle). Closing with its bytes unread would reset the
     * connection, and the client might never read the answer.
     */
    private static final class Aggregator extends HttpObjectAggregator {
        Aggregator() {
            super(MAX_BODY);
        }

        @Override
        protected void handleOversizedMessage(ChannelHandlerContext ctx, io.netty.handler.codec.http.HttpMessage oversized) {
            io.netty.util.ReferenceCountUtil.release(oversized);
            ctx.pipeline().addFirst(new io.netty.channel.ChannelInboundHandlerAdapter() {
                @Override
                public void channelRead(ChannelHandlerContext c, Object msg) {
                    io.netty.util.ReferenceCountUtil.release(msg);
                }
            });
            Reply r = Reply.error(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "the body is over " + MAX_BODY + " bytes");
            FullHttpResponse res = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, r.status(), Unpooled.wrappedBuffer(r.body()));
            res.headers().set(HttpHeaderNames.CONTENT_TYPE, r.contentType());
            res.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            HttpUtil.setContentLength(res, r.body().length);
            ctx.writeAndFlush(res).addListener((ChannelFutureListener) f -> ((EpollDomainSocketChannel) f.channel()).shutdownOutput());
        }
    }

    /** A reply: status and a JSON body, or a text body of its own type (the metrics exposition). */
    private record Reply(HttpResponseStatus status, byte[] body, String contentType, String allow) {
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

    /** One connection's requests, one at a time. */
    private final class Requests extends SimpleChannelInboundHandler<FullHttpRequest> {
        /** Requests of a client that pipelines, read while one is in hand: answered in order, at most {@value #MAX_QUEUED}. */
        private static final int MAX_QUEUED = 16;
        private final java.util.ArrayDeque<Pending> queued = new java.util.ArrayDeque<>();
        private boolean busy;

        /** A request as read (its body copied out of the codec's buffer), or the reason it is not one. */
        private record Pending(HttpMethod method, String path, byte[] body, String accept, boolean keepAlive, String malformed) {
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
            Pending p;
            if (!req.decoderResult().isSuccess()) {
                Throwable cause = req.decoderResult().cause();
                p = new Pending(null, null, null, null, false,
                        "not an HTTP request: " + (cause == null ? "malformed" : DeviceSet.shorten(String.valueOf(cause.getMessage()))));
            } else {
                p = new Pending(req.method(), new QueryStringDecoder(req.uri()).path(), ByteBufUtil.getBytes(req.content()),
                        req.headers().get(HttpHeaderNames.ACCEPT), HttpUtil.isKeepAlive(req), null);
            }
            if (busy) {
                // The codec had more bytes than the request in hand (pipelining): keep their order.
                if (queued.size() >= MAX_QUEUED) {
                    ctx.close();
                    return;
                }
                queued.add(p);
                return;
            }
            handle(ctx, p);
        }

        private void handle(ChannelHandlerContext ctx, Pending p) {
            busy = true;
            ctx.channel().config().setAutoRead(false);
            if (p.malformed() != null) {
                write(ctx, Reply.error(HttpResponseStatus.BAD_REQUEST, p.malformed()), false);
                return;
            }
            CompletableFuture<Reply> reply;
            try {
                reply = route(p.method(), p.path(), p.body(), p.accept());
            } catch (RuntimeException e) {
                reply = CompletableFuture.completedFuture(failure(e));
            }
            reply.whenComplete((r, t) -> ctx.executor().execute(() -> write(ctx, t != null ? failure(t) : r, p.keepAlive())));
        }

        private void write(ChannelHandlerContext ctx, Reply r, boolean keepAlive) {
            FullHttpResponse res = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, r.status(), Unpooled.wrappedBuffer(r.body()));
            res.headers().set(HttpHeaderNames.CONTENT_TYPE, r.contentType());
            if (r.allow() != null) {
                res.headers().set(HttpHeaderNames.ALLOW, r.allow());
            }
            HttpUtil.setContentLength(res, r.body().length);
            if (!keepAlive) {
                res.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            ctx.writeAndFlush(res).addListener((ChannelFutureListener) f -> {
                if (!keepAlive || !f.isSuccess()) {
                    f.channel().close();
                    return;
                }
                busy = false;
                Pending next = queued.poll();
                if (next != null) {
                    handle(ctx, next);
                } else {
                    f.channel().config().setAutoRead(true);
                }
            });
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            if (evt instanceof IdleStateEvent && !busy) {
                ctx.close(); // half a request, or nothing, for IDLE_SECONDS
                return;
            }
            super.userEventTriggered(ctx, evt);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            LOG.debug("control: connection closed: {}", cause.toString());
            ctx.close();
        }
    }

    private static Reply failure(Throwable t) {
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
    private CompletableFuture<Reply> route(HttpMethod method, String uri, byte[] body, String accept) {
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

    /**
     * Stops answering: no connection is accepted or read after this, a change under way finishes
     * (a removal within its drain limit), and the socket file is removed.
     */
    @Override
    public void close() {
        server.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        changes.getQueue().clear(); // queued changes are dropped (their clients see the connection close)
        changes.shutdown(); // the one running ends as it would have
        try {
            if (!changes.awaitTermination(60, TimeUnit.SECONDS)) {
                LOG.warn("control: a change did not end within 60 s of the stop");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
        try {
            if ((Long) Files.getAttribute(path, "unix:ino", LinkOption.NOFOLLOW_LINKS) == inode) {
                Files.deleteIfExists(path);
            }
        } catch (IOException | RuntimeException e) {
            // gone already, or another's now
        }
    }
}
