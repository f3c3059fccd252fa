package org.jvirtio.transport.vhostuser;

import java.util.concurrent.Executor;

import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.transport.vhostuser.FrontendRequest.*;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;

/**
 * The backend's side of one front-end connection: decodes each message once
 * ({@link VhostUserCodec#decode}) and applies the typed request with an exhaustive switch.
 * Split by concern: {@link MemoryTable} (guest memory), {@link Vrings} (the rings' state
 * machine), {@link DeviceLife} (features, status, the device's activation and resets),
 * {@link BackendChannel} (requests to the front-end), {@link InflightTracking},
 * {@link DirtyLogging}; this class keeps the protocol features and config space, and answers. Runs on the connection's control
 * thread only; a device thread that needs something done (a ring broke, the config changed)
 * hands it over through {@code control}.
 */
final class BackendSession implements DeviceContext, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BackendSession.class);

    private final VirtioDevice device;
    private final DeviceQueues queues;
    /** Protocol features offered: derived from what the device has. */
    private final long offeredProtocolFeatures;
    private final int connFd;
    private final Executor control;
    private final MemoryTable memory;
    private final Vrings vrings;
    private final BackendChannel channel = new BackendChannel();
    private final InflightTracking inflight;
    private final DirtyLogging dirtyLog;
    private final DeviceLife life;
    private long protocolFeatures;
    private boolean closed;
    /** Set on the control loop when the backend shuts down: tasks the queue threads hand it from then on do nothing. */
    private volatile boolean closing;

    BackendSession(DeviceQueues queues, int connFd, Executor control, BackendOptions options) {
        this.memory = new MemoryTable(options.allowUnsealedMemory());
        this.device = queues.device();
        this.inflight = new InflightTracking(device.queueCount(), options.allowUnsealedMemory());
        this.dirtyLog = new DirtyLogging(options.allowUnsealedMemory());
        this.queues = queues;
        boolean offerDirtyLog = options.offerDirtyLog();
        this.offeredProtocolFeatures = VhostUserProtocol.protocolFeaturesFor(device) | (offerDirtyLog ? 1L << PROTOCOL_F_LOG_SHMFD : 0);
        this.connFd = connFd;
        this.control = control;
        this.life = new DeviceLife(queues, this, inflight, offerDirtyLog);
        this.vrings = new Vrings(queues, new Vrings.Session() {
            @Override
            public GuestMemory memory() {
                return memory.memory();
            }

            @Override
            public long features() {
                return life.features();
            }

            @Override
            public java.lang.foreign.MemorySegment inflight(int index, int size, boolean packed) {
                return inflight.queue(index, size, packed);
            }

            @Override
            public org.jvirtio.api.DirtyLog dirtyLog() {
                return (life.features() & F_LOG_ALL) != 0 ? dirtyLog.log() : null;
            }

            @Override
            public int inflightEntries() {
                return inflight.entries();
            }

            @Override
            public void beforeFirstStart() {
                life.beforeFirstStart();
            }
        }, (q, violation) -> {
            queues.stats(q.index()).addViolation();
            needsReset(q.index(), violation.message());
        });
        life.vrings(vrings);
    }

    /**
     * Whether a protocol feature was negotiated. Protocol features take effect with
     * SET_PROTOCOL_FEATURES, which QEMU sends before SET_FEATURES (right after GET_FEATURES
     * offered VHOST_USER_F_PROTOCOL_FEATURES), so REPLY_ACK applies from the next message on.
     */
    private boolean protocol(int bit) {
        return (protocolFeatures & (1L << bit)) != 0;
    }

    // ---------------------------------------------------------------- dispatch

    /**
     * Applies one message and sends its reply. Takes ownership of the message's fds: each is
     * either kept (a kick fd, say) or closed before this returns, on every path.
     */
    void handle(VhostUserMessage m) throws VhostUserProtocolException, ErrnoException {
        try {
            FrontendRequest decoded = VhostUserCodec.decode(m);
            if (LOG.isDebugEnabled()) {
                LOG.debug("vhost-user: {} flags 0x{} fds {}: {}", m.name(), Integer.toHexString(m.flags()), m.fds().length, decoded);
            }
            apply(m, decoded);
        } catch (VhostUserProtocolException e) {
            if (!answerFailure(m, e)) {
                throw e;
            }
        } finally {
            new MessageFds(m.fds()).closeUntaken();
        }
    }

    /**
     * A well-framed request that failed its checks: where the front-end can be told and go on, it
     * is told, and the connection stays (with QEMU's reconnect, a disconnect would only come back
     * as the same failure in a loop). A GET_CONFIG gets a reply of no bytes (QEMU reports that as
     * the failure, as libvhost-user's answer); a request without a reply of its own that asked for
     * REPLY_ACK gets a non-zero ack. Anything else closes the connection, as before. Requests are
     * checked before they change anything, so a refused one leaves the session as it was.
     *
     * @return whether the failure was answered
     */
    private boolean answerFailure(VhostUserMessage m, VhostUserProtocolException e) throws ErrnoException {
        VhostUserRequest req = VhostUserRequest.of(m.request());
        if (req == null || !VhostUserCodec.isWellFramedRequest(m)) {
            return false;
        }
        if (req == VhostUserRequest.GET_CONFIG) {
            LOG.warn("vhost-user: refused {}", e.getMessage());
            send(m.request(), new byte[0]);
            return true;
        }
        if (m.needsReply() && protocol(PROTOCOL_F_REPLY_ACK) && !req.solicitsReply()) {
            LOG.warn("vhost-user: refused {}", e.getMessage());
            send(m.request(), VhostUserMessage.u64(1));
            return true;
        }
        return false;
    }

    private void apply(VhostUserMessage m, FrontendRequest request) throws VhostUserProtocolException, ErrnoException {
        String name = m.name();
        // Decided before the request runs, except for SET_PROTOCOL_FEATURES itself: a front-end
        // that negotiates REPLY_ACK with NEED_REPLY on that very message (the Linux kernel's
        // vhost-user driver does) waits for the ack, as libvhost-user gives it.
        boolean ack = m.needsReply() && protocol(PROTOCOL_F_REPLY_ACK);
        String refused = request instanceof Unsupported ? null
                : VhostUserRequest.of(m.request()).refusal(offeredProtocolFeatures, protocolFeatures);
        if (refused != null) {
            throw new VhostUserProtocolException(name + " " + refused);
        }
        byte[] reply = switch (request) {
            case GetFeatures g -> VhostUserMessage.u64(life.offeredFeatures());
            case SetFeatures s -> {
                life.setFeatures(name, s.features());
                yield null;
            }
            case SetOwner s -> null;
            case ResetDevice r -> {
                life.reset();
                yield null;
            }
            case GetProtocolFeatures g -> VhostUserMessage.u64(offeredProtocolFeatures);
            case SetProtocolFeatures s -> {
                if ((s.features() & ~offeredProtocolFeatures) != 0) {
                    throw new VhostUserProtocolException(name + ": protocol features 0x"
                            + Long.toHexString(s.features() & ~offeredProtocolFeatures) + " were not offered");
                }
                protocolFeatures = s.features();
                ack = m.needsReply() && protocol(PROTOCOL_F_REPLY_ACK);
                yield null;
            }
            case GetQueueNum g -> VhostUserMessage.u64(vrings.count());
            case GetMaxMemSlots g -> VhostUserMessage.u64(MAX_MEM_SLOTS);
            case SetMemTable t -> {
                GuestMemory next = memory.table(name, t.regions(), t.fds());
                vrings.replaceMemory(() -> memory.install(next));
                yield null;
            }
            case AddMemReg a -> {
                GuestMemory next = memory.with(name, a.region(), a.fds());
                if (next != memory.memory()) {
                    vrings.replaceMemory(() -> memory.install(next));
                }
                yield null;
            }
            case RemMemReg r -> {
                GuestMemory next = memory.without(name, r.region());
                if (next != memory.memory()) {
                    vrings.replaceMemory(() -> memory.install(next));
                }
                yield null;
            }
            case SetVringNum s -> {
                vrings.setNum(name, s.index(), s.num());
                yield null;
            }
            case SetVringAddr s -> {
                vrings.setAddr(name, s.addr());
                yield null;
            }
            case SetVringBase s -> {
                vrings.setBase(name, s.index(), s.base());
                yield null;
            }
            case GetVringBase g -> VhostUserMessage.vringState(g.index(), vrings.getBase(name, g.index()));
            case SetVringFd s -> {
                vrings.setFd(name, s.kind(), s.index(), s.fds());
                yield null;
            }
            case SetVringEnable s -> {
                vrings.setEnable(name, s.index(), s.enable());
                yield null;
            }
            case SetBackendReqFd s -> {
                channel.set(s.fds().take(0));
                yield null;
            }
            case GetConfig g -> ConfigMessages.read(device, g.config());
            case SetConfig s -> {
                ConfigMessages.write(device, name, s.config());
                yield null;
            }
            case SetStatus s -> {
                life.setStatus(name, s.status());
                yield null;
            }
            case GetStatus g -> VhostUserMessage.u64(life.status());
            case GetInflightFd g -> {
                inflight.create(name, g, connFd, VirtioFeatures.has(life.features(), VirtioFeatures.RING_PACKED));
                yield null;
            }
            case SetInflightFd i -> {
                inflight.take(name, i, vrings.anyRunning());
                yield null;
            }
            case SetLogBase l -> {
                dirtyLog.setBase(name, l, vrings);
                // QEMU waits for this reply (an empty one) whenever LOG_SHMFD is negotiated.
                send(m.request(), new byte[0]);
                yield null;
            }
            case SetLogFd l -> {
                dirtyLog.setFd(l);
                yield null;
            }
            case SendRarp r -> {
                device.announce(r.mac());
                yield null;
            }
            case Unsupported u -> {
                refuse(m, u.request());
                yield null;
            }
        };
        if (reply != null) {
            send(m.request(), reply);
        } else if (ack && !(request instanceof Unsupported)) {
            send(m.request(), VhostUserMessage.u64(0));
        }
    }

    /** A request jvirtio does not implement: refused with a REPLY_ACK failure, or the connection closes. */
    private void refuse(VhostUserMessage m, VhostUserRequest req) throws VhostUserProtocolException, ErrnoException {
        if (req == VhostUserRequest.SET_LOG_BASE || !(m.needsReply() && protocol(PROTOCOL_F_REPLY_ACK))) {
            throw new VhostUserProtocolException(m.name() + " is not supported by this backend");
        }
        LOG.warn("vhost-user: refused {} (not supported)", m.name());
        send(m.request(), VhostUserMessage.u64(1));
    }

    private void send(int request, byte[] payload) throws ErrnoException {
        UnixSocket.send(connFd, VhostUserMessage.encode(request, VERSION | FLAG_REPLY, payload), new int[0]);
    }

    /** The device status byte the front-end last set (with DEVICE_NEEDS_RESET once a ring broke). */
    int deviceStatus() {
        return life.status();
    }

    // ---------------------------------------------------------------- DeviceContext

    @Override
    public long negotiatedFeatures() {
        return life.features() & ~(F_PROTOCOL_FEATURES | F_LOG_ALL);
    }

    @Override
    public void notifyConfigChange() {
        control.execute(() -> {
            if (closed || closing || !channel.isOpen() || !protocol(PROTOCOL_F_CONFIG) || !protocol(PROTOCOL_F_BACKEND_REQ)) {
                LOG.info("vhost-user: config changed; the front-end has no backend request channel to be told on");
                return;
            }
            if (!vrings.anyRunning()) {
                // A stopped device: QEMU handles CONFIG_CHANGE_MSG by re-reading the config into a
                // device that may not be there (it reads the config again when it starts it).
                LOG.info("vhost-user: config changed while every ring is stopped; not announced");
                return;
            }
            channel.configChanged(protocol(PROTOCOL_F_REPLY_ACK));
        });
    }

    @Override
    public void needsReset(int queue, String reason) {
        control.execute(() -> {
            if (closed || closing) {
                return;
            }
            life.needsReset();
            org.jvirtio.api.jfr.DeviceNeedsResetEvent.emit(queue, reason);
            LOG.warn("vhost-user: device needs reset: {}", reason);
            EventFd err = vrings.errFd(queue);
            if (err != null) {
                err.signal();
            }
        });
    }

    /** Connection gone: stop everything, reset the device, release every mapping and fd. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        release();
    }

    private void release() {
        life.reset();
        closed = true;
        dirtyLog.close();
        channel.close();
        memory.close();
    }

    /**
     * The first half of shutting down, on the control loop: the queues take nothing new, and the
     * tasks queue threads hand the loop from now on ({@link #needsReset}, {@link #notifyConfigChange})
     * do nothing, so that {@link #shutdown} may run off the loop.
     */
    void prepareShutdown() {
        closing = true;
        queues.requestStopAll();
    }

    /**
     * Closes for a backend that is shutting down (SIGTERM), after {@link #prepareShutdown} (on any
     * thread then): every queue gets {@code limit} in all to drain, and what is still in flight
     * then is abandoned (its guest memory stays mapped until the process ends, which tears its
     * io_uring down first).
     */
    void shutdown(java.time.Duration limit) {
        if (closed) {
            return;
        }
        if (!queues.stopAll(limit)) {
            LOG.warn("vhost-user: shutting down with requests still in flight at the device (abandoned after {} ms)", limit.toMillis());
        }
        release();
    }
}
