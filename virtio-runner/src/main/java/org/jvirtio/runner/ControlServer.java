package org.jvirtio.runner;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

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
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code --control PATH}: the process's control socket, HTTP/1.1 with JSON bodies on a Unix
 * socket, as Firecracker's and Cloud Hypervisor's APIs are (so {@code curl --unix-socket PATH}
 * is a client, and {@code bin/vhost-user ctl} is one that prints for people). Netty's HTTP codec
 * parses the requests and Jackson the bodies; this class carries them, {@link ControlApi} answers.
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
    private static final Logger LOG = LoggerFactory.getLogger(ControlServer.class);

    private final Path path;
    private final long inode;
    private final ControlApi api;
    private final MultiThreadIoEventLoopGroup group;
    private final java.util.concurrent.ThreadPoolExecutor changes;
    private final AtomicInteger open = new AtomicInteger();
    private final Channel server;

    private ControlServer(Path path, long inode, DeviceSet devices, Metrics metrics, MultiThreadIoEventLoopGroup group,
                          java.util.concurrent.ThreadPoolExecutor changes, Channel server) {
        this.path = path;
        this.inode = inode;
        this.api = new ControlApi(devices, metrics, changes);
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
            ControlApi.Reply r = ControlApi.Reply.error(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "the body is over " + MAX_BODY + " bytes");
            FullHttpResponse res = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, r.status(), Unpooled.wrappedBuffer(r.body()));
            res.headers().set(HttpHeaderNames.CONTENT_TYPE, r.contentType());
            res.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            HttpUtil.setContentLength(res, r.body().length);
            ctx.writeAndFlush(res).addListener((ChannelFutureListener) f -> ((EpollDomainSocketChannel) f.channel()).shutdownOutput());
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
                write(ctx, ControlApi.Reply.error(HttpResponseStatus.BAD_REQUEST, p.malformed()), false);
                return;
            }
            CompletableFuture<ControlApi.Reply> reply;
            try {
                reply = api.route(p.method(), p.path(), p.body(), p.accept());
            } catch (RuntimeException e) {
                reply = CompletableFuture.completedFuture(ControlApi.failure(e));
            }
            reply.whenComplete((r, t) -> ctx.executor().execute(() -> write(ctx, t != null ? ControlApi.failure(t) : r, p.keepAlive())));
        }

        private void write(ChannelHandlerContext ctx, ControlApi.Reply r, boolean keepAlive) {
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
