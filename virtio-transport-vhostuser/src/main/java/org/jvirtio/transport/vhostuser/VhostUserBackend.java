package org.jvirtio.transport.vhostuser;

import java.io.IOException;
import org.jvirtio.api.linux.Libc;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;

import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.epoll.EpollIoHandle;
import io.netty.channel.epoll.EpollIoOps;
import io.netty.channel.unix.FileDescriptor;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.host.QueueHost;
import org.jvirtio.api.QueueStats;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A vhost-user backend: a Unix socket server that one front-end (QEMU, Cloud Hypervisor,
 * libblkio, {@link VhostUserFrontend}) at a time connects to, driving a {@link VirtioDevice}.
 *
 * <p>The control plane runs on one Netty epoll event loop: the listening socket and the
 * connection are {@link EpollIoHandle}s; bytes and fds of a message are read together with
 * {@code recvmsg} (see {@link UnixSocket}). A malformed message closes the connection with one
 * log line naming the message and the reason; the device is reset, every mapping and fd of the
 * connection is released, and the server accepts the next front-end. A second front-end while
 * one is connected is refused.
 */
public final class VhostUserBackend implements AutoCloseable {
    /**
     * How long a shutting-down backend lets requests in flight finish, all queues together:
     * SIGTERM must end the process within seconds, whatever the storage does.
     */
    static final java.time.Duration SHUTDOWN_DRAIN = java.time.Duration.ofSeconds(2);

    private static final Logger LOG = LoggerFactory.getLogger(VhostUserBackend.class);

    private final Path socketPath;
    private final VirtioDevice device;
    private final QueueHost host;
    private final BackendOptions options;
    private final QueueStats[] stats;
    private final ControlLoop control;
    /** Whether {@link #control} is this backend's own (closed with it) or shared with others. */
    private final boolean ownsControl;
    private final IoEventLoop loop;
    private final int listenFd;
    /** The inode of the socket file this backend created: only that file is removed on close. */
    private final long socketInode;
    private IoRegistration listenRegistration;
    private FrontendConnection connection;
    private final AtomicLong connections = new AtomicLong();
    /** Whether a front-end is connected (written on the control thread, read by anyone: metrics). */
    private volatile boolean connected;
    private volatile String lastDisconnectReason;
    private volatile CompletableFuture<String> nextDisconnect = new CompletableFuture<>();
    private volatile boolean closed;

    private VhostUserBackend(Path socketPath, VirtioDevice device, QueueHost host, BackendOptions options, int listenFd, long socketInode,
                             ControlLoop control, boolean ownsControl) {
        this.socketInode = socketInode;
        this.options = options;
        this.stats = QueueStats.forQueues(device.queueCount());
        this.socketPath = socketPath;
        this.device = device;
        this.host = host;
        this.listenFd = listenFd;
        this.control = control;
        this.ownsControl = ownsControl;
        this.loop = control.loop();
    }

    /** As {@link #start(Path, VirtioDevice, QueueHost)} with a thread per queue. */
    public static VhostUserBackend start(Path socketPath, VirtioDevice device) throws IOException {
        return start(socketPath, device, QueueHost.THREAD_PER_QUEUE);
    }

    /**
     * Creates the socket file (mode 0600; a stale socket at the path is replaced; any other
     * kind of file there is refused) and starts accepting.
     *
     * @param host runs the device's queues (a thread per queue, or {@link org.jvirtio.host.IoThreads});
     *             the caller closes it after closing the backend
     */
    public static VhostUserBackend start(Path socketPath, VirtioDevice device, QueueHost host) throws IOException {
        return start(socketPath, device, host, BackendOptions.DEFAULT);
    }

    /** As {@link #start(Path, VirtioDevice, QueueHost)}, with {@code options} (unsealable guest memory, ...). */
    public static VhostUserBackend start(Path socketPath, VirtioDevice device, QueueHost host, BackendOptions options) throws IOException {
        return start(socketPath, device, host, options, null);
    }

    /**
     * As {@link #start(Path, VirtioDevice, QueueHost, BackendOptions)}, on {@code control}, a
     * control loop shared with other backends of the process (the caller closes it after them), or
     * null for a loop of its own.
     */
    public static VhostUserBackend start(Path socketPath, VirtioDevice device, QueueHost host, BackendOptions options, ControlLoop control)
            throws IOException {
        Path dir = socketPath.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new IOException("socket directory " + dir + " does not exist");
        }
        if (Files.exists(socketPath, LinkOption.NOFOLLOW_LINKS) && !isSocket(socketPath)) {
            throw new IOException(socketPath + " exists and is not a socket; refusing to replace it");
        }
        // Bind inside a fresh directory only we can enter (0700), restrict the socket to the owner,
        // then rename it over the target: the socket is never reachable by anyone else before its
        // mode is final (listen() happens before chmod), and a stale one is replaced atomically.
        Path privateDir = Files.createTempDirectory(dir, ".vu",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Path tmp = privateDir.resolve("s"); // short: a socket path has at most 107 bytes
        int fd = -1;
        long inode;
        try {
            fd = UnixSocket.listen(tmp, 4);
            Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-------"));
            Files.move(tmp, socketPath, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            inode = inode(socketPath);
        } catch (IOException | RuntimeException e) {
            Libc.closeQuietly(fd);
            Files.deleteIfExists(tmp);
            throw e;
        } finally {
            Files.deleteIfExists(privateDir);
        }
        return serve(socketPath, device, host, options, control, fd, inode);
    }

    /**
     * As {@link #start(Path, VirtioDevice, QueueHost, BackendOptions, ControlLoop)} on a listening
     * socket bound to {@code socketPath} that someone else made (systemd's socket activation,
     * {@link Systemd#take}): nothing is bound, and on close the socket file is left to its maker
     * (only the fd is closed), so the path keeps answering while this backend restarts.
     */
    public static VhostUserBackend adopt(Path socketPath, int listenFd, VirtioDevice device, QueueHost host, BackendOptions options,
                                         ControlLoop control) throws IOException {
        return serve(socketPath, device, host, options, control, listenFd, NOT_OURS);
    }

    /** The socket inode of an adopted socket: its file is never removed. */
    private static final long NOT_OURS = -1;

    private static VhostUserBackend serve(Path socketPath, VirtioDevice device, QueueHost host, BackendOptions options, ControlLoop control,
                                          int fd, long inode) throws IOException {
        VhostUserBackend b = new VhostUserBackend(socketPath, device, host, options, fd, inode,
                control != null ? control : new ControlLoop(), control == null);
        try {
            b.listenRegistration = b.register(b.new Listener());
        } catch (IOException e) {
            b.close();
            throw e;
        }
        LOG.info("vhost-user backend listening on {}{}", socketPath, inode == NOT_OURS ? " (a socket passed by systemd)" : "");
        return b;
    }

    private static long inode(Path p) throws IOException {
        return ((Number) Files.getAttribute(p, "unix:ino", LinkOption.NOFOLLOW_LINKS)).longValue();
    }

    private static boolean isSocket(Path p) throws IOException {
        Object mode = Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        return mode instanceof Integer m && (m & 0170000) == 0140000;
    }

    private IoRegistration register(EpollIoHandle handle) throws IOException {
        try {
            IoRegistration r = loop.register(handle).get(10, TimeUnit.SECONDS);
            r.submit(EpollIoOps.EPOLLIN);
            return r;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while registering with the event loop", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IOException("cannot register with the event loop", e);
        }
    }

    public Path socketPath() {
        return socketPath;
    }

    /** Per-queue counters of the device, across connections (for --stats). */
    public QueueStats[] queueStats() {
        return stats;
    }

    /** Whether a front-end is connected now. */
    public boolean connected() {
        return connected;
    }

    /** Connections accepted so far (refused second front-ends not counted). */
    public long connectionCount() {
        return connections.get();
    }

    /** Why the last connection ended ("front-end disconnected" or the protocol error). */
    public String lastDisconnectReason() {
        return lastDisconnectReason;
    }

    /**
     * What the backend's connection looks like now, for an operator ({@code ctl list}).
     *
     * @param connected whether a front-end is connected
     * @param features the virtio features negotiated on that connection (0 when none)
     * @param deviceStatus the device status byte the front-end set (VIRTIO 1.3 2.1)
     * @param connections connections accepted so far
     * @param lastDisconnectReason why the last connection ended, or null
     */
    public record Status(boolean connected, long features, int deviceStatus, long connections, String lastDisconnectReason) {
        /** Whether a ring broke (DEVICE_NEEDS_RESET) and the front-end has not reset the device since. */
        public boolean needsReset() {
            return (deviceStatus & org.jvirtio.api.DeviceStatus.DEVICE_NEEDS_RESET) != 0;
        }
    }

    /**
     * The backend's {@link Status}, read on its control thread (which may be busy for up to the
     * drain limit answering a GET_VRING_BASE: callers bound the wait).
     */
    public CompletableFuture<Status> status() {
        CompletableFuture<Status> f = new CompletableFuture<>();
        try {
            loop.execute(() -> {
                FrontendConnection c = connection;
                boolean on = c != null && !c.closed();
                f.complete(new Status(on, on ? c.session().negotiatedFeatures() : 0, on ? c.session().deviceStatus() : 0,
                        connections.get(), lastDisconnectReason));
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            f.complete(new Status(false, 0, 0, connections.get(), lastDisconnectReason));
        }
        return f;
    }

    /** Completes with the reason when the current (or next) connection ends. */
    public CompletableFuture<String> nextDisconnect() {
        return nextDisconnect;
    }

    private final class Listener implements EpollIoHandle {
        private final FileDescriptor fd = new FileDescriptor(listenFd);

        @Override
        public FileDescriptor fd() {
            return fd;
        }

        @Override
        public void handle(IoRegistration registration, IoEvent event) {
            try {
                int c;
                while ((c = UnixSocket.accept(listenFd)) >= 0) {
                    if (connection != null) {
                        LOG.warn("vhost-user: refused a second front-end on {}: one is already connected", socketPath);
                        Libc.closeQuietly(c);
                        continue;
                    }
                    accept(c);
                }
            } catch (ErrnoException | RuntimeException | Error e) {
                LOG.error("vhost-user: accept failed on {}: {}", socketPath, e.toString());
            }
        }

        @Override
        public void close() {
            // the listening fd is closed by VhostUserBackend.close()
        }
    }

    private void accept(int fd) {
        FrontendConnection c = new FrontendConnection(fd,
                new BackendSession(new DeviceQueues(device, host, stats, options.drainLimit()), fd, loop, options), this::closed);
        connection = c;
        connected = true;
        connections.incrementAndGet();
        try {
            c.registered(register(c));
            LOG.info("vhost-user: front-end connected on {}", socketPath);
            org.jvirtio.api.jfr.FrontendConnectedEvent.emit(socketPath.toString());
        } catch (IOException e) {
            c.close("cannot register the connection: " + e.getMessage());
        }
    }

    /** The connection {@code c} ended (on the control loop, or off it for a shutdown). */
    private void closed(FrontendConnection c, String reason) {
        lastDisconnectReason = reason;
        if (connection == c) {
            connection = null;
            connected = false;
        }
        org.jvirtio.api.jfr.FrontendDisconnectedEvent.emit(socketPath.toString(), reason);
        if (reason.equals("front-end disconnected")) {
            LOG.info("vhost-user: front-end disconnected from {}; waiting for the next one", socketPath);
        } else {
            LOG.warn("vhost-user: connection closed: {}", reason);
        }
        CompletableFuture<String> f = nextDisconnect;
        nextDisconnect = new CompletableFuture<>();
        f.complete(reason);
    }

    /** Closes the connection (resetting the device), stops listening and removes the socket file. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        FrontendConnection c = null;
        try {
            // On the loop: nothing more is read or accepted, the queues take nothing new ...
            c = loop.submit(() -> {
                FrontendConnection now = connection;
                if (now != null) {
                    now.prepareShutdown();
                }
                if (listenRegistration != null) {
                    listenRegistration.cancel();
                }
                return now;
            }).get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.warn("vhost-user: shutting down on the control loop: {}", e.toString());
        }
        if (c != null) {
            // ... and here, off the loop (which other backends may share), the bounded drain, the
            // device reset, and every fd and mapping of the connection released.
            c.shutdown(SHUTDOWN_DRAIN);
        }
        Libc.closeQuietly(listenFd);
        try {
            // Only the socket this backend made: in a rolling restart the path already belongs to
            // the replacement, which QEMU must be able to reconnect to.
            if (socketInode == NOT_OURS) {
                // systemd's socket: it keeps listening (queueing QEMU's reconnects) while we restart
            } else if (Files.exists(socketPath, LinkOption.NOFOLLOW_LINKS) && inode(socketPath) == socketInode) {
                Files.delete(socketPath);
            } else {
                LOG.info("vhost-user: {} is no longer this backend's socket; left in place", socketPath);
            }
        } catch (IOException e) {
            LOG.warn("vhost-user: cannot remove {}: {}", socketPath, e.getMessage());
        }
        if (ownsControl) {
            control.close();
        }
    }
}
