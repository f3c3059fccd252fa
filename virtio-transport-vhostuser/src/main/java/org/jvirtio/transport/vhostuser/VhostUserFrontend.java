package org.jvirtio.transport.vhostuser;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.transport.vhostuser.VhostUserCodec.MemRegion;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;

/**
 * The front-end side of vhost-user (the role QEMU plays): connects to any vhost-user backend,
 * negotiates, shares guest memory, sets up rings, and kicks and waits on calls through
 * eventfds. With it a Java program can use a vhost-user device as a user-space driver (the role
 * libblkio plays in C), e.g. qemu-storage-daemon's vhost-user-blk export.
 *
 * <p>Guest memory shared with the backend must be fd-backed ({@code MemoryMapping.memfd}); the
 * front-end's "user address" of a region is where it is mapped in this process. Calls are
 * synchronous and not thread-safe: one thread drives the control plane. Every wait for a reply
 * is bounded by {@link #replyTimeoutMillis}.
 */
public final class VhostUserFrontend implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserFrontend.class);

    private final int fd;
    private final MessageReader reader;
    private int replyTimeoutMillis = 10_000;
    private long protocolFeatures;
    private boolean protocolNegotiated;
    private int backendChannelFd = -1;
    private Thread backendChannelThread;
    private final AtomicInteger configChanges = new AtomicInteger();
    private GuestMemory memory = GuestMemory.empty();

    private VhostUserFrontend(int fd) {
        this.fd = fd;
        this.reader = new MessageReader(fd, false);
    }

    /** Connects to a backend's socket. */
    public static VhostUserFrontend connect(Path socket) throws IOException {
        return new VhostUserFrontend(UnixSocket.connect(socket));
    }

    public void setReplyTimeoutMillis(int millis) {
        this.replyTimeoutMillis = millis;
    }

    // ------------------------------------------------------------ messaging

    /**
     * Sends any bytes with any fds, framed or not: the driver kit's way to play a hostile or
     * broken front-end against a backend (malformed messages, messages in pieces, wrong fd
     * counts), as jvirtio's own protocol tests do.
     */
    public void sendRaw(byte[] bytes, int... fds) throws IOException {
        UnixSocket.send(fd, bytes, fds);
    }

    /**
     * Half-closes the connection: the backend reads what was sent, then the end of the stream;
     * its replies can still be read (or left unread) until {@link #close()}.
     */
    public void shutdownOutput() {
        UnixSocket.shutdown(fd, 1); // SHUT_WR
    }

    private boolean replyAck() {
        return protocolNegotiated && (protocolFeatures & (1L << PROTOCOL_F_REPLY_ACK)) != 0;
    }

    /** Sends a request that has no reply of its own; waits for the REPLY_ACK when negotiated. */
    private void request(VhostUserRequest req, byte[] payload, int... fds) throws IOException {
        boolean ack = replyAck();
        UnixSocket.send(fd, VhostUserMessage.encode(req.code(), VERSION | (ack ? FLAG_NEED_REPLY : 0), payload), fds);
        if (ack) {
            long status = ByteBuffer.wrap(awaitReply(req).payload()).order(ByteOrder.LITTLE_ENDIAN).getLong();
            if (status != 0) {
                throw new IOException("backend refused " + req + " (REPLY_ACK status " + status + ")");
            }
        }
    }

    /** Sends a request and returns its reply's payload. */
    private byte[] query(VhostUserRequest req, byte[] payload) throws IOException {
        UnixSocket.send(fd, VhostUserMessage.encode(req.code(), VERSION, payload), new int[0]);
        return awaitReply(req).payload();
    }

    private VhostUserMessage awaitReply(VhostUserRequest req) throws IOException {
        VhostUserMessage m = awaitReplyKeepingFds(req);
        UnixSocket.closeAll(m.fds());
        return m;
    }

    private VhostUserMessage awaitReplyKeepingFds(VhostUserRequest req) throws IOException {
        if (!Libc.pollIn(fd, replyTimeoutMillis)) {
            throw new IOException("no reply to " + req + " within " + replyTimeoutMillis + " ms");
        }
        MessageReader.Status s;
        try {
            s = reader.read();
        } catch (VhostUserProtocolException e) {
            throw new IOException("bad reply to " + req + ": " + e.getMessage(), e);
        }
        if (s != MessageReader.Status.MESSAGE) {
            throw new IOException("backend closed the connection instead of answering " + req);
        }
        VhostUserMessage m = reader.message();
        if (m.request() != req.code() || !m.isReply()) {
            UnixSocket.closeAll(m.fds());
            throw new IOException("expected a reply to " + req + ", got " + m.name() + " flags 0x" + Integer.toHexString(m.flags()));
        }
        return m;
    }

    private static long u64(byte[] p) throws IOException {
        if (p.length != 8) {
            throw new IOException("reply of " + p.length + " bytes where a u64 was expected");
        }
        return ByteBuffer.wrap(p).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    // ------------------------------------------------------------ negotiation

    public long getFeatures() throws IOException {
        return u64(query(VhostUserRequest.GET_FEATURES, new byte[0]));
    }

    public void setFeatures(long features) throws IOException {
        request(VhostUserRequest.SET_FEATURES, VhostUserMessage.u64(features));
    }

    public long getProtocolFeatures() throws IOException {
        return u64(query(VhostUserRequest.GET_PROTOCOL_FEATURES, new byte[0]));
    }

    public void setProtocolFeatures(long features) throws IOException {
        // REPLY_ACK applies from the next message on.
        UnixSocket.send(fd, VhostUserMessage.encode(VhostUserRequest.SET_PROTOCOL_FEATURES.code(), VERSION, VhostUserMessage.u64(features)), new int[0]);
        protocolFeatures = features;
        protocolNegotiated = true;
    }

    public void setOwner() throws IOException {
        request(VhostUserRequest.SET_OWNER, new byte[0]);
    }

    /** RESET_OWNER: the backend forgets the negotiated virtio features (protocol features stay); negotiate again. */
    public void resetOwner() throws IOException {
        request(VhostUserRequest.RESET_OWNER, new byte[0]);
    }

    /** RESET_DEVICE: the backend forgets the negotiated virtio features (protocol features stay); negotiate again. */
    public void resetDevice() throws IOException {
        request(VhostUserRequest.RESET_DEVICE, new byte[0]);
    }

    public int getQueueNum() throws IOException {
        return (int) u64(query(VhostUserRequest.GET_QUEUE_NUM, new byte[0]));
    }

    public int getMaxMemSlots() throws IOException {
        return (int) u64(query(VhostUserRequest.GET_MAX_MEM_SLOTS, new byte[0]));
    }

    public void setStatus(int status) throws IOException {
        request(VhostUserRequest.SET_STATUS, VhostUserMessage.u64(status));
    }

    public int getStatus() throws IOException {
        return (int) u64(query(VhostUserRequest.GET_STATUS, new byte[0]));
    }

    /**
     * Negotiates the usual way: GET_FEATURES, SET_OWNER (as QEMU, first), protocol features
     * (the intersection with {@code wantedProtocol}), SET_FEATURES with {@code wanted} &amp;
     * offered (plus the protocol-features bit when offered, never VHOST_F_LOG_ALL).
     *
     * @return the virtio features now negotiated
     */
    public long negotiate(long wanted, long wantedProtocol) throws IOException {
        setOwner();
        long offered = getFeatures();
        // VHOST_F_LOG_ALL is for the front-end to turn on when a migration starts (QEMU does,
        // with SET_FEATURES while the rings run), never part of the first negotiation.
        long features = offered & wanted & ~F_LOG_ALL;
        if ((offered & F_PROTOCOL_FEATURES) != 0) {
            setProtocolFeatures(getProtocolFeatures() & wantedProtocol);
            features |= F_PROTOCOL_FEATURES;
        }
        setFeatures(features);
        return features & ~F_PROTOCOL_FEATURES;
    }

    // ------------------------------------------------------------ memory

    private static MemRegion describe(GuestRegion r) {
        if (r.mapping().fd() < 0) {
            throw new IllegalArgumentException("region at 0x" + Long.toHexString(r.guestAddress()) + " has no fd to share");
        }
        return new MemRegion(r.guestAddress(), r.size(), r.segment().address(), r.mapping().fileOffset() + r.mappingOffset());
    }

    /** Shares all of {@code mem} with SET_MEM_TABLE (at most 8 regions). */
    public void setMemTable(GuestMemory mem) throws IOException {
        List<MemRegion> regions = new ArrayList<>();
        int[] fds = new int[mem.regionCount()];
        for (int i = 0; i < mem.regionCount(); i++) {
            regions.add(describe(mem.region(i)));
            fds[i] = mem.region(i).mapping().fd();
        }
        request(VhostUserRequest.SET_MEM_TABLE, VhostUserCodec.encodeMemTable(regions), fds);
        this.memory = mem;
    }

    /** Adds one region (CONFIGURE_MEM_SLOTS); {@code mem} is the memory including it. */
    public void addMemReg(GuestRegion region, GuestMemory mem) throws IOException {
        request(VhostUserRequest.ADD_MEM_REG, VhostUserCodec.encodeMemRegion(describe(region)), region.mapping().fd());
        this.memory = mem;
    }

    /** Removes one region; {@code mem} is the memory without it. */
    public void remMemReg(GuestRegion region, GuestMemory mem) throws IOException {
        request(VhostUserRequest.REM_MEM_REG, VhostUserCodec.encodeMemRegion(describe(region)));
        this.memory = mem;
    }

    /** The frontend's user address of a guest address in the shared memory. */
    public long userAddress(long gpa) {
        int r = memory.findRegion(gpa);
        if (r < 0) {
            throw new IllegalArgumentException("guest address 0x" + Long.toHexString(gpa) + " is not in the shared memory");
        }
        return memory.regionSegment(r).address() + (gpa - memory.regionStart(r));
    }

    // ------------------------------------------------------------ rings

    public void setVringNum(int index, int num) throws IOException {
        request(VhostUserRequest.SET_VRING_NUM, VhostUserMessage.vringState(index, num));
    }

    public void setVringBase(int index, int base) throws IOException {
        request(VhostUserRequest.SET_VRING_BASE, VhostUserMessage.vringState(index, base));
    }

    /** Ring addresses given as guest physical addresses of the shared memory. */
    public void setVringAddr(int index, long descGpa, long availGpa, long usedGpa) throws IOException {
        request(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.encodeVringAddr(index, 0,
                userAddress(descGpa), userAddress(usedGpa), userAddress(availGpa), 0));
    }

    /**
     * Ring addresses with dirty logging of the used ring (VHOST_VRING_F_LOG) at {@code logGpa},
     * as QEMU sends them when migration starts.
     */
    public void setVringAddrLogged(int index, long descGpa, long availGpa, long usedGpa, long logGpa) throws IOException {
        request(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.encodeVringAddr(index, VRING_F_LOG,
                userAddress(descGpa), userAddress(usedGpa), userAddress(availGpa), logGpa));
    }

    /** SET_LOG_BASE with LOG_SHMFD: shares the dirty log ({@code size} bytes of {@code logFd} at {@code offset}); waits for the reply. */
    public void setLogBase(int logFd, long size, long offset) throws IOException {
        byte[] p = ByteBuffer.allocate(LOG_SIZE).order(ByteOrder.LITTLE_ENDIAN).putLong(size).putLong(offset).array();
        UnixSocket.send(fd, VhostUserMessage.encode(VhostUserRequest.SET_LOG_BASE.code(), VERSION, p), new int[] {logFd});
        awaitReply(VhostUserRequest.SET_LOG_BASE);
    }

    /** Stops the ring; returns the next avail index the backend would have read. */
    public int getVringBase(int index) throws IOException {
        byte[] p = query(VhostUserRequest.GET_VRING_BASE, VhostUserMessage.vringState(index, 0));
        if (p.length != VRING_STATE_SIZE) {
            throw new IOException("GET_VRING_BASE reply of " + p.length + " bytes");
        }
        return ByteBuffer.wrap(p).order(ByteOrder.LITTLE_ENDIAN).getInt(4);
    }

    private void vringFd(VhostUserRequest req, int index, EventFd e) throws IOException {
        long v = index | (e == null ? VRING_NOFD_MASK : 0);
        if (e == null) {
            request(req, VhostUserMessage.u64(v));
        } else {
            request(req, VhostUserMessage.u64(v), e.fd());
        }
    }

    /** Where the front-end kicks queue {@code index}; null: the backend polls. */
    public void setVringKick(int index, EventFd kick) throws IOException {
        vringFd(VhostUserRequest.SET_VRING_KICK, index, kick);
    }

    /** Where the backend signals used buffers; null: no interrupts. */
    public void setVringCall(int index, EventFd call) throws IOException {
        vringFd(VhostUserRequest.SET_VRING_CALL, index, call);
    }

    public void setVringErr(int index, EventFd err) throws IOException {
        vringFd(VhostUserRequest.SET_VRING_ERR, index, err);
    }

    public void setVringEnable(int index, boolean enable) throws IOException {
        request(VhostUserRequest.SET_VRING_ENABLE, VhostUserMessage.vringState(index, enable ? 1 : 0));
    }

    /** SEND_RARP (PROTOCOL_F_RARP): asks the back-end to announce {@code mac} (48 bits), as QEMU does after a migration. */
    public void sendRarp(long mac) throws IOException {
        byte[] p = new byte[8];
        for (int i = 0; i < 6; i++) {
            p[i] = (byte) (mac >>> (8 * (5 - i)));
        }
        request(VhostUserRequest.SEND_RARP, p);
    }

    // ------------------------------------------------------------ inflight tracking

    /** The inflight region a backend made: its fd (owned by the caller) and description. */
    public record InflightFd(int fd, long mmapSize, long mmapOffset, int numQueues, int queueSize) {
    }

    /** GET_INFLIGHT_FD: asks the backend for a region for {@code numQueues} queues of {@code queueSize}. */
    public InflightFd getInflightFd(int numQueues, int queueSize) throws IOException {
        UnixSocket.send(fd, VhostUserMessage.encode(VhostUserRequest.GET_INFLIGHT_FD.code(), VERSION,
                VhostUserCodec.encodeInflight(new VhostUserCodec.Inflight(0, 0, numQueues, queueSize))), new int[0]);
        VhostUserMessage m = awaitReplyKeepingFds(VhostUserRequest.GET_INFLIGHT_FD);
        if (m.fds().length != 1 || m.payload().length != INFLIGHT_SIZE) {
            UnixSocket.closeAll(m.fds());
            throw new IOException("GET_INFLIGHT_FD reply of " + m.payload().length + " bytes with " + m.fds().length + " fds");
        }
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(m.payload()).order(ByteOrder.LITTLE_ENDIAN);
        return new InflightFd(m.fds()[0], b.getLong(), b.getLong(), Short.toUnsignedInt(b.getShort()), Short.toUnsignedInt(b.getShort()));
    }

    /** SET_INFLIGHT_FD: hands a region (kept across backends) to this backend. */
    public void setInflightFd(InflightFd f) throws IOException {
        request(VhostUserRequest.SET_INFLIGHT_FD, VhostUserCodec.encodeInflight(
                new VhostUserCodec.Inflight(f.mmapSize(), f.mmapOffset(), f.numQueues(), f.queueSize())), f.fd());
    }

    // ------------------------------------------------------------ config

    public byte[] getConfig(int offset, int size) throws IOException {
        byte[] p = query(VhostUserRequest.GET_CONFIG, VhostUserCodec.encodeConfigRequest(offset, size));
        if (p.length != CONFIG_HEADER_SIZE + size) {
            throw new IOException("GET_CONFIG reply of " + p.length + " bytes for " + size + " requested");
        }
        byte[] data = new byte[size];
        System.arraycopy(p, CONFIG_HEADER_SIZE, data, 0, size);
        return data;
    }

    public void setConfig(int offset, byte[] data) throws IOException {
        request(VhostUserRequest.SET_CONFIG, VhostUserCodec.encodeConfig(offset, 0, data));
    }

    // ------------------------------------------------------------ backend request channel

    /**
     * Opens the backend request channel (SET_BACKEND_REQ_FD) and serves it on a daemon thread:
     * CONFIG_CHANGE_MSG is counted ({@link #configChanges()}) and acknowledged.
     */
    public void openBackendChannel() throws IOException {
        openBackendChannel(() -> { });
    }

    /**
     * Opens the backend request channel and serves it on a daemon thread: each CONFIG_CHANGE_MSG
     * is counted, runs {@code onConfigChange} on that thread, then is acknowledged (where the
     * backend asked for a reply) with 0; a request this front-end does not serve is answered
     * with 1 (failure), as QEMU answers one, and otherwise ignored.
     */
    public void openBackendChannel(Runnable onConfigChange) throws IOException {
        int[] pair = UnixSocket.socketPair();
        try {
            request(VhostUserRequest.SET_BACKEND_REQ_FD, new byte[0], pair[1]);
        } catch (IOException | RuntimeException e) {
            Libc.closeQuietly(pair[0]);
            throw e;
        } finally {
            Libc.closeQuietly(pair[1]);
        }
        backendChannelFd = pair[0];
        backendChannelThread = Thread.ofPlatform().daemon().name("vhost-user-backend-channel")
                .start(() -> serveBackendChannel(onConfigChange));
    }

    private void serveBackendChannel(Runnable onConfigChange) {
        try (MessageReader r = new MessageReader(backendChannelFd, false)) {
            while (r.read() == MessageReader.Status.MESSAGE) {
                VhostUserMessage m = r.message();
                UnixSocket.closeAll(m.fds());
                long result = 1;
                if (m.request() == BACKEND_CONFIG_CHANGE_MSG) {
                    configChanges.incrementAndGet();
                    try {
                        onConfigChange.run();
                        result = 0;
                    } catch (RuntimeException e) {
                        LOG.warn("backend channel: the configuration change was not passed on: {}", e.toString());
                    }
                } else {
                    LOG.debug("backend channel: request {} not served", m.request());
                }
                if (m.needsReply()) {
                    UnixSocket.send(backendChannelFd, VhostUserMessage.encode(m.request(), VERSION | FLAG_REPLY, VhostUserMessage.u64(result)),
                            new int[0]);
                }
            }
        } catch (ErrnoException | VhostUserProtocolException e) {
            LOG.debug("backend channel ended: {}", e.getMessage());
        }
    }

    /** CONFIG_CHANGE_MSGs received on the backend request channel. */
    public int configChanges() {
        return configChanges.get();
    }

    @Override
    public void close() {
        UnixSocket.shutdown(fd);
        reader.close();
        Libc.closeQuietly(fd);
        if (backendChannelFd >= 0) {
            UnixSocket.shutdown(backendChannelFd);
            try {
                backendChannelThread.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            Libc.closeQuietly(backendChannelFd);
            backendChannelFd = -1;
        }
    }
}
