package org.jvirtio.transport.vhostuser;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;

import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestMemoryException;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitRingLayout;
import org.jvirtio.transport.vhostuser.VhostUserCodec.Config;
import org.jvirtio.transport.vhostuser.VhostUserCodec.MemRegion;
import org.jvirtio.transport.vhostuser.VhostUserCodec.VringAddr;
import org.jvirtio.transport.vhostuser.VhostUserCodec.VringFd;
import org.jvirtio.transport.vhostuser.VhostUserCodec.VringState;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;

/**
 * The backend's state for one front-end connection, and the logic that applies decoded
 * messages to it and to the device. Runs on the connection's control thread only; a device
 * thread that needs something done (a ring broke, the config changed) hands it over through
 * {@code control}.
 *
 * <p>A queue that runs is owned by the device's thread: to change anything it uses (memory,
 * call fd, ring addresses) the session stops the queue (the device drains it), changes it, and
 * starts it again.
 */
final class BackendSession implements DeviceContext, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BackendSession.class);

    /** Per-queue state as the front-end set it. */
    private static final class Vring {
        final SplitQueue queue;
        int num;
        VringAddr addr;
        int base;
        EventFd kick;
        boolean kickSet;
        EventFd call;
        EventFd err;
        boolean enabled;
        /** Between SET_VRING_KICK and GET_VRING_BASE (vhost-user.rst "Starting and stopping rings"). */
        boolean started;
        /** The queue passed translation and activation with the current memory. */
        boolean active;
        /** The device serves it now. */
        boolean running;

        Vring(int index, int maxChainLength) {
            this.queue = new SplitQueue(index, maxChainLength);
        }
    }

    private final VirtioDevice device;
    private final DeviceQueues queues;
    /** Protocol features offered: derived from what the device has. */
    private final long offeredProtocolFeatures;
    private final int connFd;
    private final Executor control;
    private final Vring[] vrings;
    private long features;
    private long protocolFeatures;
    private GuestMemory memory = GuestMemory.empty();
    private int backendReqFd = -1;
    private volatile int status;
    private boolean activated;
    private boolean closed;

    BackendSession(DeviceQueues queues, int connFd, Executor control) {
        this.device = queues.device();
        this.queues = queues;
        this.offeredProtocolFeatures = VhostUserProtocol.protocolFeaturesFor(device);
        this.connFd = connFd;
        this.control = control;
        this.vrings = new Vring[device.queueCount()];
        for (int i = 0; i < vrings.length; i++) {
            Vring v = new Vring(i, device.maxChainLength());
            int index = i;
            v.queue.setViolationListener((q, violation) -> needsReset(index, violation.message()));
            vrings[i] = v;
        }
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
        if (LOG.isDebugEnabled()) {
            LOG.debug("vhost-user: {} flags 0x{} size {} fds {}", m.name(), Integer.toHexString(m.flags()), m.payload().length, m.fds().length);
        }
        int[] fds = m.fds();
        try {
            dispatch(m, fds);
        } finally {
            UnixSocket.closeAll(untaken(fds));
        }
    }

    private static int[] untaken(int[] fds) {
        int n = 0;
        for (int fd : fds) {
            if (fd >= 0) {
                n++;
            }
        }
        int[] out = new int[n];
        n = 0;
        for (int fd : fds) {
            if (fd >= 0) {
                out[n++] = fd;
            }
        }
        return out;
    }

    /** Takes fd {@code i} out of the message (so it is not closed at the end). */
    private static int take(int[] fds, int i) {
        int fd = fds[i];
        fds[i] = -1;
        return fd;
    }

    private void dispatch(VhostUserMessage m, int[] fds) throws VhostUserProtocolException, ErrnoException {
        VhostUserCodec.checkHeader(m);
        VhostUserRequest req = VhostUserRequest.of(m.request());
        if (req == null) {
            throw new VhostUserProtocolException("unknown request code " + Integer.toUnsignedString(m.request()));
        }
        if (!req.supported()) {
            refuse(m, req);
            return;
        }
        byte[] reply = null;
        // Decided before the request runs: a reset clears the negotiated protocol features.
        boolean ack = m.needsReply() && protocol(PROTOCOL_F_REPLY_ACK);
        switch (req) {
            case GET_FEATURES -> {
                VhostUserCodec.decodeNone(m);
                reply = VhostUserMessage.u64(FeatureNegotiation.offered(device) | F_PROTOCOL_FEATURES);
            }
            case SET_FEATURES -> setFeatures(m, VhostUserCodec.decodeU64(m));
            case SET_OWNER -> VhostUserCodec.decodeNone(m);
            case RESET_OWNER, RESET_DEVICE -> {
                VhostUserCodec.decodeNone(m);
                resetDevice();
            }
            case GET_PROTOCOL_FEATURES -> {
                VhostUserCodec.decodeNone(m);
                reply = VhostUserMessage.u64(offeredProtocolFeatures);
            }
            case SET_PROTOCOL_FEATURES -> {
                long pf = VhostUserCodec.decodeU64(m);
                if ((pf & ~offeredProtocolFeatures) != 0) {
                    throw new VhostUserProtocolException(m.name() + ": protocol features 0x" + Long.toHexString(pf & ~offeredProtocolFeatures) + " were not offered");
                }
                protocolFeatures = pf;
            }
            case GET_QUEUE_NUM -> {
                VhostUserCodec.decodeNone(m);
                reply = VhostUserMessage.u64(vrings.length);
            }
            case GET_MAX_MEM_SLOTS -> {
                VhostUserCodec.decodeNone(m);
                reply = VhostUserMessage.u64(MAX_MEM_SLOTS);
            }
            case SET_MEM_TABLE -> setMemTable(m, VhostUserCodec.decodeMemTable(m), fds);
            case ADD_MEM_REG -> addMemReg(m, VhostUserCodec.decodeMemRegion(m, true), fds);
            case REM_MEM_REG -> remMemReg(m, VhostUserCodec.decodeMemRegion(m, false));
            case SET_VRING_NUM -> setVringNum(m, VhostUserCodec.decodeVringState(m));
            case SET_VRING_ADDR -> setVringAddr(m, VhostUserCodec.decodeVringAddr(m));
            case SET_VRING_BASE -> setVringBase(m, VhostUserCodec.decodeVringState(m));
            case GET_VRING_BASE -> reply = getVringBase(m, VhostUserCodec.decodeVringState(m));
            case SET_VRING_KICK -> setVringKick(m, VhostUserCodec.decodeVringFd(m), fds);
            case SET_VRING_CALL -> setVringCall(m, VhostUserCodec.decodeVringFd(m), fds);
            case SET_VRING_ERR -> setVringErr(m, VhostUserCodec.decodeVringFd(m), fds);
            case SET_VRING_ENABLE -> setVringEnable(m, VhostUserCodec.decodeVringState(m));
            case SET_BACKEND_REQ_FD -> {
                if (m.payload().length != 0 && m.payload().length != 8) {
                    throw new VhostUserProtocolException(m.name() + ": payload of " + m.payload().length + " bytes, expected none");
                }
                if (fds.length != 1) {
                    throw new VhostUserProtocolException(m.name() + ": carried " + fds.length + " file descriptors, expected 1");
                }
                UnixSocket.closeQuietly(backendReqFd);
                backendReqFd = take(fds, 0);
            }
            case GET_CONFIG -> reply = getConfig(m, VhostUserCodec.decodeConfig(m, false));
            case SET_CONFIG -> setConfig(m, VhostUserCodec.decodeConfig(m, true));
            case SET_STATUS -> {
                long s = VhostUserCodec.decodeU64(m);
                if (s < 0 || s > 0xff) {
                    throw new VhostUserProtocolException(m.name() + ": status 0x" + Long.toHexString(s) + " does not fit 8 bits");
                }
                int current = status & ~DeviceStatus.DEVICE_NEEDS_RESET;
                if (!DeviceStatus.isLegalAggregateTransition(current, (int) s)) {
                    throw new VhostUserProtocolException(m.name() + ": status " + DeviceStatus.describe((int) s)
                            + " cannot follow " + DeviceStatus.describe(current));
                }
                status = s == 0 ? 0 : (int) s | (status & DeviceStatus.DEVICE_NEEDS_RESET);
            }
            case GET_STATUS -> {
                VhostUserCodec.decodeNone(m);
                reply = VhostUserMessage.u64(status);
            }
            default -> throw new IllegalStateException("unhandled " + req);
        }
        if (reply != null) {
            send(m.request(), reply);
        } else if (ack) {
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

    // ---------------------------------------------------------------- features and reset

    private void setFeatures(VhostUserMessage m, long f) throws VhostUserProtocolException {
        FeatureNegotiation.Result r = FeatureNegotiation.negotiate(FeatureNegotiation.offered(device) | F_PROTOCOL_FEATURES, f, true);
        if (!r.accepted()) {
            throw new VhostUserProtocolException(m.name() + ": " + r.message());
        }
        if (activated && f != features) {
            for (Vring v : vrings) {
                if (v.running) {
                    throw new VhostUserProtocolException(m.name() + ": features changed from 0x" + Long.toHexString(features)
                            + " to 0x" + Long.toHexString(f) + " while queue " + v.queue.index() + " runs");
                }
            }
            // A new driver session (firmware first, then the guest kernel, renegotiate): the
            // device starts over with the new features when the next queue starts.
            queues.stopAll();
            device.reset();
            activated = false;
        }
        features = f;
    }

    private void resetDevice() {
        for (Vring v : vrings) {
            stopRunning(v);
            v.queue.deactivate();
            closeVringFds(v);
            v.num = 0;
            v.addr = null;
            v.base = 0;
            v.kickSet = false;
            v.enabled = false;
            v.started = false;
            v.active = false;
        }
        if (activated) {
            queues.stopAll();
            device.reset();
            activated = false;
        }
        features = 0;
        status = 0;
    }

    private static void closeVringFds(Vring v) {
        closeKickAndCall(v);
        if (v.err != null) {
            v.err.close();
            v.err = null;
        }
    }

    private static void closeKickAndCall(Vring v) {
        if (v.kick != null) {
            v.kick.close();
            v.kick = null;
        }
        if (v.call != null) {
            v.call.close();
            v.call = null;
        }
    }

    // ---------------------------------------------------------------- memory

    private boolean warnedUnsealable;

    private GuestRegion mapRegion(VhostUserMessage m, MemRegion r, int fd) throws VhostUserProtocolException {
        if (r.size() <= 0) {
            throw new VhostUserProtocolException(m.name() + ": region at guest 0x" + Long.toHexString(r.guestAddress())
                    + " has size " + Long.toUnsignedString(r.size()));
        }
        if (r.mmapOffset() < 0 || r.mmapOffset() + r.size() < 0) {
            throw new VhostUserProtocolException(m.name() + ": mmap offset 0x" + Long.toHexString(r.mmapOffset()) + " + size overflows");
        }
        try {
            // Seal first, then check the size: a front-end can no longer shrink it under us.
            sealAgainstShrinking(m, fd);
            long fileSize = Libc.fileSize(fd);
            if (fileSize < r.mmapOffset() + r.size()) {
                // Touching a mapping past the end of its file raises SIGBUS: refuse it up front.
                throw new VhostUserProtocolException(m.name() + ": region [offset 0x" + Long.toHexString(r.mmapOffset())
                        + ", +0x" + Long.toHexString(r.size()) + ") runs past the end of its file (" + fileSize + " bytes)");
            }
            MemoryMapping mapping = MemoryMapping.map(fd, r.mmapOffset(), r.size());
            try {
                return new GuestRegion(r.guestAddress(), r.size(), r.userAddress(), mapping, 0);
            } catch (IllegalArgumentException e) {
                mapping.release();
                throw new VhostUserProtocolException(m.name() + ": " + e.getMessage());
            }
        } catch (ErrnoException e) {
            throw new VhostUserProtocolException(m.name() + ": cannot map region at guest 0x" + Long.toHexString(r.guestAddress()) + ": " + e.getMessage());
        }
    }

    /**
     * A front-end that shrinks the file behind a region after we mapped it would make our next
     * access to it fault (SIGBUS, which the JVM turns into an asynchronous InternalError). Where
     * the file allows it (a memfd created with MFD_ALLOW_SEALING and not sealed against more
     * seals) we add F_SEAL_SHRINK, so the shrink fails instead; QEMU's memory-backend-memfd
     * already seals by default (seal=on). Files that cannot be sealed (hugetlbfs, plain tmpfs, a
     * memfd with F_SEAL_SEAL) are used anyway, with a warning: nothing else can protect them.
     */
    private void sealAgainstShrinking(VhostUserMessage m, int fd) {
        try {
            int seals = Libc.fcntl(fd, Libc.F_GET_SEALS, 0);
            if ((seals & Libc.F_SEAL_SHRINK) != 0) {
                return;
            }
            if ((seals & Libc.F_SEAL_SEAL) == 0) {
                Libc.fcntl(fd, Libc.F_ADD_SEALS, Libc.F_SEAL_SHRINK);
                return;
            }
        } catch (ErrnoException e) {
            // EINVAL: the file does not support seals
        }
        if (!warnedUnsealable) {
            warnedUnsealable = true;
            LOG.warn("vhost-user: {}: a guest memory file cannot be sealed against shrinking; a front-end that truncates it"
                    + " would make the backend fault", m.name());
        }
    }

    private void setMemTable(VhostUserMessage m, List<MemRegion> regions, int[] fds) throws VhostUserProtocolException {
        List<GuestRegion> mapped = new ArrayList<>();
        try {
            for (int i = 0; i < regions.size(); i++) {
                mapped.add(mapRegion(m, regions.get(i), fds[i]));
            }
            GuestMemory next;
            try {
                next = GuestMemory.of(mapped);
            } catch (IllegalArgumentException e) {
                throw new VhostUserProtocolException(m.name() + ": " + e.getMessage());
            }
            replaceMemory(next);
        } finally {
            // GuestMemory.of retained what it keeps; drop the creation references.
            for (GuestRegion r : mapped) {
                r.mapping().release();
            }
        }
    }

    private void addMemReg(VhostUserMessage m, MemRegion r, int[] fds) throws VhostUserProtocolException {
        if (memory.regionCount() >= MAX_MEM_SLOTS) {
            throw new VhostUserProtocolException(m.name() + ": all " + MAX_MEM_SLOTS + " memory slots are in use");
        }
        GuestRegion region = mapRegion(m, r, fds[0]);
        try {
            replaceMemory(memory.withRegion(region));
        } catch (IllegalArgumentException e) {
            throw new VhostUserProtocolException(m.name() + ": " + e.getMessage());
        } finally {
            region.mapping().release();
        }
    }

    private void remMemReg(VhostUserMessage m, MemRegion r) throws VhostUserProtocolException {
        for (GuestRegion g : memory.regions()) {
            if (g.guestAddress() == r.guestAddress() && g.size() == r.size() && g.userAddress() == r.userAddress()) {
                replaceMemory(memory.withoutRegion(r.guestAddress(), r.size()));
                return;
            }
        }
        throw new VhostUserProtocolException(m.name() + ": no region at guest 0x" + Long.toHexString(r.guestAddress())
                + " of size 0x" + Long.toHexString(r.size()) + " and user address 0x" + Long.toHexString(r.userAddress()));
    }

    /**
     * Installs new guest memory: running queues are stopped (so nothing in flight points into
     * the old mappings), moved to the new memory with the same indices, and started again. The
     * old memory is released afterwards; mappings both share stay mapped.
     */
    private void replaceMemory(GuestMemory next) {
        List<Vring> wereRunning = new ArrayList<>();
        for (Vring v : vrings) {
            if (v.running) {
                stopRunning(v);
                wereRunning.add(v);
            }
        }
        GuestMemory old = memory;
        memory = next;
        for (Vring v : vrings) {
            if (v.started) {
                reactivate(v);
            }
        }
        old.release();
        for (Vring v : wereRunning) {
            startRunningIfReady(v);
        }
    }

    // ---------------------------------------------------------------- rings

    private Vring vring(VhostUserMessage m, int index) throws VhostUserProtocolException {
        if (index < 0 || index >= vrings.length) {
            throw new VhostUserProtocolException(m.name() + ": queue index " + Integer.toUnsignedString(index)
                    + " out of range (device has " + vrings.length + " queues)");
        }
        return vrings[index];
    }

    private void setVringNum(VhostUserMessage m, VringState s) throws VhostUserProtocolException {
        Vring v = vring(m, s.index());
        int max = Math.min(device.maxQueueSize(s.index()), SplitRingLayout.MAX_SIZE);
        if (!SplitRingLayout.isValidSize(s.num()) || s.num() > max) {
            throw new VhostUserProtocolException(m.name() + ": queue " + s.index() + " size " + Integer.toUnsignedString(s.num())
                    + " is not a power of two in [1, " + max + "]");
        }
        if (v.started) {
            throw new VhostUserProtocolException(m.name() + ": queue " + s.index() + " size changed while the ring is started");
        }
        v.num = s.num();
    }

    private void setVringBase(VhostUserMessage m, VringState s) throws VhostUserProtocolException {
        Vring v = vring(m, s.index());
        if (Integer.compareUnsigned(s.num(), 0xffff) > 0) {
            throw new VhostUserProtocolException(m.name() + ": queue " + s.index() + " base " + Integer.toUnsignedString(s.num()) + " exceeds 16 bits");
        }
        if (v.started) {
            throw new VhostUserProtocolException(m.name() + ": queue " + s.index() + " base changed while the ring is started");
        }
        v.base = s.num();
    }

    private void setVringAddr(VhostUserMessage m, VringAddr a) throws VhostUserProtocolException {
        Vring v = vring(m, a.index());
        if ((a.flags() & ~VRING_F_LOG) != 0) {
            throw new VhostUserProtocolException(m.name() + ": queue " + a.index() + " unknown flags 0x" + Integer.toHexString(a.flags()));
        }
        if ((a.flags() & VRING_F_LOG) != 0) {
            throw new VhostUserProtocolException(m.name() + ": queue " + a.index() + " asks for dirty logging, which this backend does not offer");
        }
        if (memory.regionCount() > 0 && v.num > 0) {
            String why = translateError(v.num, a);
            if (why != null) {
                throw new VhostUserProtocolException(m.name() + ": queue " + a.index() + " " + why);
            }
        }
        boolean wasRunning = v.running;
        stopRunning(v);
        v.addr = a;
        if (v.started) {
            reactivate(v);
        }
        if (wasRunning) {
            startRunningIfReady(v);
        }
    }

    /** Why the ring addresses do not translate with the current memory, or null. */
    private String translateError(int num, VringAddr a) {
        try {
            long d = memory.userToGuest(a.desc(), SplitRingLayout.descTableBytes(num));
            long av = memory.userToGuest(a.avail(), SplitRingLayout.availBytes(num));
            long u = memory.userToGuest(a.used(), SplitRingLayout.usedBytes(num));
            if ((d & 15) != 0 || (av & 1) != 0 || (u & 3) != 0) {
                return "vring addresses misaligned (desc 0x" + Long.toHexString(d) + ", avail 0x" + Long.toHexString(av)
                        + ", used 0x" + Long.toHexString(u) + ")";
            }
            return null;
        } catch (GuestMemoryException e) {
            return "vring addresses outside guest memory: " + e.getMessage();
        }
    }

    private byte[] getVringBase(VhostUserMessage m, VringState s) throws VhostUserProtocolException {
        Vring v = vring(m, s.index());
        stopRunning(v);
        int base = v.active ? v.queue.nextAvail() : v.base;
        v.queue.deactivate();
        v.active = false;
        v.started = false;
        v.base = base;
        v.kickSet = false;
        // The ring is stopped: its kick and call are done with (as libvhost-user).
        closeKickAndCall(v);
        return VhostUserMessage.vringState(s.index(), base);
    }

    /**
     * Takes a kick, call or err fd and makes it non-blocking: the counter (or, for a fd that is
     * not an eventfd at all, the pipe or socket) is the front-end's to fill, and a write of ours
     * that blocks would stop an I/O thread serving other queues.
     */
    private EventFd adoptEventFd(VhostUserMessage m, int[] fds) throws VhostUserProtocolException {
        int fd = take(fds, 0);
        try {
            Libc.setNonBlocking(fd);
        } catch (ErrnoException e) {
            UnixSocket.closeQuietly(fd);
            throw new VhostUserProtocolException(m.name() + ": cannot make the file descriptor non-blocking: " + e.getMessage());
        }
        return EventFd.adopt(fd, true);
    }

    private void setVringKick(VhostUserMessage m, VringFd f, int[] fds) throws VhostUserProtocolException {
        Vring v = vring(m, f.index());
        boolean wasRunning = v.running;
        stopRunning(v);
        if (v.kick != null) {
            v.kick.close();
        }
        v.kick = f.noFd() ? null : adoptEventFd(m, fds);
        v.kickSet = true;
        if (!v.started) {
            v.started = true;
            if ((features & F_PROTOCOL_FEATURES) == 0) {
                v.enabled = true; // without protocol features a ring starts enabled
            }
            activateQueue(v, -1);
        }
        if (wasRunning || v.enabled) {
            startRunningIfReady(v);
        }
    }

    private void setVringCall(VhostUserMessage m, VringFd f, int[] fds) throws VhostUserProtocolException {
        Vring v = vring(m, f.index());
        boolean wasRunning = v.running;
        stopRunning(v);
        if (v.call != null) {
            v.call.close();
        }
        v.call = f.noFd() ? null : adoptEventFd(m, fds);
        if (wasRunning) {
            startRunningIfReady(v);
        }
    }

    private void setVringErr(VhostUserMessage m, VringFd f, int[] fds) throws VhostUserProtocolException {
        Vring v = vring(m, f.index());
        if (v.err != null) {
            v.err.close();
        }
        v.err = f.noFd() ? null : adoptEventFd(m, fds);
    }

    private void setVringEnable(VhostUserMessage m, VringState s) throws VhostUserProtocolException {
        Vring v = vring(m, s.index());
        if (s.num() != 0 && s.num() != 1) {
            throw new VhostUserProtocolException(m.name() + ": queue " + s.index() + " enable value " + Integer.toUnsignedString(s.num()) + ", expected 0 or 1");
        }
        v.enabled = s.num() == 1;
        if (v.enabled) {
            startRunningIfReady(v);
        } else {
            stopRunning(v);
        }
    }

    /** Activates a stopped ring again with the current memory and addresses, keeping its indices. */
    private void reactivate(Vring v) {
        int nextAvail = v.active ? v.queue.nextAvail() : v.base;
        int nextUsed = v.active ? v.queue.nextUsed() : -1;
        v.base = nextAvail;
        v.active = false;
        v.queue.deactivate();
        activateQueue(v, nextUsed);
    }

    /**
     * Validates and activates the ring with the current memory.
     *
     * @param nextUsed the used index to continue from, or -1 to take it from the ring
     */
    private void activateQueue(Vring v, int nextUsed) {
        int index = v.queue.index();
        if (v.addr == null || v.num == 0 || memory.regionCount() == 0) {
            LOG.warn("vhost-user: queue {} started before its size, addresses and memory were set; it waits for them", index);
            return;
        }
        String why = translateError(v.num, v.addr);
        if (why != null) {
            LOG.warn("vhost-user: queue {} cannot run: {}", index, why);
            return;
        }
        long d = memory.userToGuest(v.addr.desc(), SplitRingLayout.descTableBytes(v.num));
        long a = memory.userToGuest(v.addr.avail(), SplitRingLayout.availBytes(v.num));
        long u = memory.userToGuest(v.addr.used(), SplitRingLayout.usedBytes(v.num));
        int used = nextUsed >= 0 ? nextUsed : memory.readU16(u + 2);
        try {
            v.queue.activate(memory, v.num, d, a, u, features, v.base, used);
            v.active = true;
        } catch (RingConfigurationException e) {
            LOG.warn("vhost-user: queue {} cannot run: {}", index, e.getMessage());
        }
    }

    private void startRunningIfReady(Vring v) {
        if (v.running || !v.started || !v.enabled) {
            return;
        }
        if (!v.active) {
            activateQueue(v, -1);
            if (!v.active) {
                return;
            }
        }
        if (!activated) {
            device.activate(this);
            activated = true;
        }
        EventFd call = v.call;
        Interrupt irq = call == null ? Interrupt.NONE : call::signal;
        queues.start(new QueueBinding(v.queue.index(), v.queue, v.kick, irq));
        v.running = true;
    }

    private void stopRunning(Vring v) {
        if (v.running) {
            v.running = false;
            queues.stop(v.queue.index());
        }
    }

    private byte[] getConfig(VhostUserMessage m, Config c) throws VhostUserProtocolException {
        byte[] data = new byte[c.size()];
        int have = device.configSize();
        if (c.offset() < have) {
            int n = Math.min(c.size(), have - c.offset());
            byte[] part = device.readConfig(c.offset(), n);
            System.arraycopy(part, 0, data, 0, n);
        }
        // Bytes past the device's config space read as zero: fields a newer front-end knows and
        // this device does not offer.
        return VhostUserCodec.encodeConfig(c.offset(), c.flags(), data);
    }

    private void setConfig(VhostUserMessage m, Config c) throws VhostUserProtocolException {
        if (c.offset() + c.size() > device.configSize()) {
            throw new VhostUserProtocolException(m.name() + ": range offset " + c.offset() + " size " + c.size()
                    + " exceeds the device's " + device.configSize() + "-byte config space");
        }
        device.writeConfig(c.offset(), c.data());
    }

    // ---------------------------------------------------------------- DeviceContext

    @Override
    public long negotiatedFeatures() {
        return features & ~F_PROTOCOL_FEATURES;
    }

    @Override
    public void notifyConfigChange() {
        control.execute(() -> {
            if (closed || backendReqFd < 0 || !protocol(PROTOCOL_F_CONFIG) || !protocol(PROTOCOL_F_BACKEND_REQ)) {
                LOG.info("vhost-user: config changed; the front-end has no backend request channel to be told on");
                return;
            }
            boolean ack = protocol(PROTOCOL_F_REPLY_ACK);
            try {
                // The channel is the front-end's socket: never block on it (a front-end that stops
                // reading must not stall this loop, which serves its messages too).
                UnixSocket.send(backendReqFd, VhostUserMessage.encode(BACKEND_CONFIG_CHANGE_MSG,
                        VERSION | (ack ? FLAG_NEED_REPLY : 0), new byte[0]), new int[0], true);
                if (ack) {
                    awaitBackendReply();
                }
            } catch (ErrnoException | VhostUserProtocolException e) {
                LOG.warn("vhost-user: CONFIG_CHANGE_MSG failed: {}", e.getMessage());
            }
        });
    }

    /** Waits up to 5 s for the whole reply (a front-end sending half of one does not stall the loop longer). */
    private void awaitBackendReply() throws ErrnoException, VhostUserProtocolException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        try (MessageReader r = new MessageReader(backendReqFd, true)) {
            while (true) {
                int left = (int) Math.max(0, (deadline - System.nanoTime()) / 1_000_000);
                if (left == 0 || !Libc.pollIn(backendReqFd, left)) {
                    throw new VhostUserProtocolException("no reply to CONFIG_CHANGE_MSG within 5 s");
                }
                MessageReader.Status s = r.read();
                if (s == MessageReader.Status.EOF) {
                    throw new VhostUserProtocolException("backend request channel closed");
                }
                if (s == MessageReader.Status.MESSAGE) {
                    UnixSocket.closeAll(r.message().fds());
                    return;
                }
            }
        }
    }

    @Override
    public void needsReset(int queue, String reason) {
        control.execute(() -> {
            if (closed) {
                return;
            }
            status |= DeviceStatus.DEVICE_NEEDS_RESET;
            LOG.warn("vhost-user: device needs reset: {}", reason);
            if (queue >= 0 && queue < vrings.length && vrings[queue].err != null) {
                vrings[queue].err.signal();
            }
        });
    }

    /** Connection gone: stop everything, reset the device, release every mapping and fd. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        resetDevice();
        closed = true;
        UnixSocket.closeQuietly(backendReqFd);
        backendReqFd = -1;
        memory.release();
        memory = GuestMemory.empty();
    }

    int status() {
        return status;
    }
}
