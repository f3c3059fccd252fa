package org.jvirtio.transport.vhostuser;

import java.util.concurrent.Executor;

import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.FeatureNegotiation;
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
 * machine), {@link BackendChannel} (requests to the front-end); this class keeps the device's
 * life cycle, features, status and config space, and answers. Runs on the connection's control
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
    /** VHOST_F_LOG_ALL offered (BackendOptions.offerDirtyLog). */
    private final boolean offerDirtyLog;
    private final InflightTracking inflight;
    private final DirtyLogging dirtyLog;
    private long features;
    private long protocolFeatures;
    private volatile int status;
    private boolean activated;
    private boolean closed;
    /** Set on the control loop when the backend shuts down: tasks the queue threads hand it from then on do nothing. */
    private volatile boolean closing;

    BackendSession(DeviceQueues queues, int connFd, Executor control, BackendOptions options) {
        this.memory = new MemoryTable(options.allowUnsealedMemory());
        this.device = queues.device();
        this.inflight = new InflightTracking(device.queueCount(), options.allowUnsealedMemory());
        this.dirtyLog = new DirtyLogging(options.allowUnsealedMemory());
        this.queues = queues;
        this.offerDirtyLog = options.offerDirtyLog();
        this.offeredProtocolFeatures = VhostUserProtocol.protocolFeaturesFor(device) | (offerDirtyLog ? 1L << PROTOCOL_F_LOG_SHMFD : 0);
        this.connFd = connFd;
        this.control = control;
        this.vrings = new Vrings(queues, new Vrings.Session() {
            @Override
            public GuestMemory memory() {
                return memory.memory();
            }

            @Override
            public long features() {
                return features;
            }

            @Override
            public java.lang.foreign.MemorySegment inflight(int index, int size, boolean packed) {
                return inflight.queue(index, size, packed);
            }

            @Override
            public org.jvirtio.api.DirtyLog dirtyLog() {
                return (features & F_LOG_ALL) != 0 ? dirtyLog.log() : null;
            }

            @Override
            public int inflightEntries() {
                return inflight.entries();
            }

            @Override
            public void beforeFirstStart() {
                if (!activated) {
                    device.activate(BackendSession.this);
                    activated = true;
                }
            }
        }, (q, violation) -> {
            queues.stats(q.index()).addViolation();
            needsReset(q.index(), violation.message());
        });
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
            case GetFeatures g -> VhostUserMessage.u64(offeredFeatures());
            case SetFeatures s -> {
                setFeatures(name, s.features());
                yield null;
            }
            case SetOwner s -> null;
            case ResetDevice r -> {
                resetDevice();
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
                int current = status & ~DeviceStatus.DEVICE_NEEDS_RESET;
                if (!DeviceStatus.isLegalAggregateTransition(current, s.status())) {
                    throw new VhostUserProtocolException(name + ": status " + DeviceStatus.describe(s.status())
                            + " cannot follow " + DeviceStatus.describe(current));
                }
                if (s.status() == 0) {
                    statusReset();
                } else {
                    status = s.status() | (status & DeviceStatus.DEVICE_NEEDS_RESET);
                    if ((s.status() & DeviceStatus.DRIVER_OK) != 0) {
                        vrings.startStopped();
                    }
                }
                yield null;
            }
            case GetStatus g -> VhostUserMessage.u64(status);
            case GetInflightFd g -> {
                inflight.create(name, g, connFd, VirtioFeatures.has(features, VirtioFeatures.RING_PACKED));
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

    /**
     * SET_STATUS 0: the driver reset the device. Its queues stop (requests in flight complete
     * first, within the drain limit) and the device model resets; the rings keep what the
     * front-end set and where they stopped, because QEMU up to 7.2 sends this before the
     * GET_VRING_BASE of each ring (8.0 on sends it after), and GET_VRING_BASE must still return
     * the true next avail index: QEMU resumes from it after a pause or a migration, and a 0 would
     * make the device replay every request in the ring.
     */
    private void statusReset() {
        vrings.stopAll();
        inflight.close();
        if (activated) {
            device.reset();
            activated = false;
        }
        status = 0;
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

    // ---------------------------------------------------------------- features and reset

    private void setFeatures(String name, long f) throws VhostUserProtocolException {
        FeatureNegotiation.Result r = FeatureNegotiation.negotiate(offeredFeatures(), f, true, FeatureNegotiation.VHOST_USER_TOLERATED);
        if (!r.accepted()) {
            throw new VhostUserProtocolException(name + ": " + r.message());
        }
        if (r.ignoredBits() != 0 && (r.features() & ~F_LOG_ALL) != (features & ~F_LOG_ALL)) {
            LOG.warn("vhost-user: the front-end acknowledged {}, which this backend does not offer; ignored (QEMU 7.2 passes"
                    + " VIRTIO_F_RING_RESET on from its own transport: queue_reset=off in the -device options stops it)",
                    org.jvirtio.api.VirtioFeatures.describe(r.ignoredBits()));
        }
        f = r.features();
        if (activated && (f & ~F_LOG_ALL) == (features & ~F_LOG_ALL)) {
            // Only VHOST_F_LOG_ALL changed: migration starts or ends (QEMU toggles it while the
            // rings run); the running rings start or stop logging, nothing else changes.
            features = f;
            vrings.applyDirtyLog();
            return;
        }
        if (activated && f != features) {
            if (vrings.anyRunning()) {
                throw new VhostUserProtocolException(name + ": features changed from 0x" + Long.toHexString(features)
                        + " to 0x" + Long.toHexString(f) + " while a queue runs");
            }
            // A new driver session (firmware first, then the guest kernel, renegotiate): the
            // device starts over with the new features when the next queue starts.
            queues.stopAll();
            device.reset();
            activated = false;
        }
        features = f;
    }

    /**
     * The virtio features offered: the device's, the rings' (packed too, where the device allows
     * it), PROTOCOL_FEATURES, and LOG_ALL when dirty logging is offered.
     */
    private long offeredFeatures() {
        return FeatureNegotiation.offeredWithPacked(device) | F_PROTOCOL_FEATURES | (offerDirtyLog ? F_LOG_ALL : 0);
    }

    private void resetDevice() {
        vrings.reset();
        inflight.close();
        if (activated) {
            queues.stopAll();
            device.reset();
            activated = false;
        }
        features = 0;
        status = 0;
    }

    /** The device status byte the front-end last set (with DEVICE_NEEDS_RESET once a ring broke). */
    int deviceStatus() {
        return status;
    }

    // ---------------------------------------------------------------- DeviceContext

    @Override
    public long negotiatedFeatures() {
        return features & ~(F_PROTOCOL_FEATURES | F_LOG_ALL);
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
            status |= DeviceStatus.DEVICE_NEEDS_RESET;
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
        resetDevice();
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
