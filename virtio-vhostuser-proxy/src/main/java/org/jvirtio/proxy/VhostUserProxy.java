package org.jvirtio.proxy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.ConcurrentHashMap;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.host.QueueEngine;
import org.jvirtio.host.QueueHost;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.transport.vhostuser.VhostUserFrontend;
import org.jvirtio.transport.vhostuser.VhostUserProtocol;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An MMIO device whose implementation is an external vhost-user backend (qemu-storage-daemon,
 * jvirtio's own {@code bin/vhost-user blk}, any other), the way Firecracker attaches
 * vhost-user-blk: the MMIO transport keeps the register window, feature negotiation and ring
 * validation, and the backend serves the rings in the guest's memory directly. Config space
 * reads and writes go to the backend (GET_CONFIG / SET_CONFIG); each queue the driver makes
 * ready is handed to the backend at DRIVER_OK with SET_VRING_NUM, _BASE, _ADDR, the queue's kick
 * eventfd (so QueueNotify reaches the backend without this process) and a call eventfd that a
 * thread of the proxy turns into the MMIO interrupt.
 *
 * <pre>{@code
 * VhostUserProxy blk = VhostUserProxy.connect(Path.of("/run/vhost-user-blk.sock"), VirtioBlk.DEVICE_ID, memory);
 * MmioTransport window = new MmioTransport(blk, memory, blk.host(), irqLine);
 * }</pre>
 *
 * <p>The guest memory must be shareable (memfd-backed regions, as {@code MemoryMapping.memfd}
 * makes them): the backend maps it from the fds. A backend that offers PROTOCOL_F_BACKEND_REQ
 * gets a backend request channel: its CONFIG_CHANGE_MSG (a resized disk, say) becomes the MMIO
 * configuration change interrupt, with ConfigGeneration moved on. Not supported yet: in-flight
 * tracking across a backend restart (a backend that goes away leaves the device broken).
 */
public final class VhostUserProxy implements VirtioDevice, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserProxy.class);
    /** Ring features the backend must offer: the MMIO transport offers them to every driver. */
    private static final long REQUIRED = VirtioFeatures.RING_FEATURES;
    /** Device-type bits (0 to 23) pass through; transport bits are the transport's. */
    private static final long DEVICE_BITS = 0xff_ffffL;
    private static final int NET_DEVICE_ID = 1;
    private static final int NET_F_CTRL_VQ = 17;
    /** VIRTIO 1.3, 5.1.3.1: CTRL_GUEST_OFFLOADS, CTRL_RX, CTRL_VLAN, GUEST_ANNOUNCE, MQ, CTRL_MAC_ADDR need CTRL_VQ. */
    private static final long NET_NEEDS_CTRL_VQ = 1L << 2 | 1L << 18 | 1L << 19 | 1L << 21 | 1L << 22 | 1L << 23;

    private final VhostUserFrontend fe;
    private final int deviceId;
    private final GuestMemory memory;
    private final long backendFeatures;
    private final int queues;
    private final int configSize;
    private final boolean resetDevice;
    private final Calls calls;
    private boolean memoryShared;
    /** The driver session's context from DRIVER_OK to the reset; read by the backend channel's thread. */
    private volatile DeviceContext context;

    private VhostUserProxy(VhostUserFrontend fe, int deviceId, GuestMemory memory, int configSize) throws IOException {
        this.fe = fe;
        this.deviceId = deviceId;
        this.memory = memory;
        this.configSize = configSize;
        fe.setOwner();
        this.backendFeatures = fe.getFeatures();
        if ((backendFeatures & REQUIRED) != REQUIRED) {
            throw new IOException("the backend does not offer VERSION_1, INDIRECT_DESC and EVENT_IDX (features 0x"
                    + Long.toHexString(backendFeatures) + "), which the MMIO transport offers its driver");
        }
        long protocol = 0;
        if ((backendFeatures & VhostUserProtocol.F_PROTOCOL_FEATURES) != 0) {
            protocol = fe.getProtocolFeatures() & VhostUserProtocol.BACKEND_PROTOCOL_FEATURES;
            fe.setProtocolFeatures(protocol);
            if ((protocol & (1L << VhostUserProtocol.PROTOCOL_F_BACKEND_REQ)) != 0) {
                fe.openBackendChannel(this::backendConfigChanged);
            }
        }
        this.queues = (protocol & (1L << VhostUserProtocol.PROTOCOL_F_MQ)) != 0 ? Math.max(1, fe.getQueueNum()) : 1;
        this.resetDevice = (protocol & (1L << VhostUserProtocol.PROTOCOL_F_RESET_DEVICE)) != 0;
        if (configSize > 0 && (protocol & (1L << VhostUserProtocol.PROTOCOL_F_CONFIG)) == 0) {
            throw new IOException("the backend does not offer PROTOCOL_F_CONFIG: its config space cannot be read");
        }
        this.calls = new Calls();
    }

    /**
     * Connects to the backend at {@code socket}.
     *
     * @param deviceId   the virtio device id it implements (vhost-user does not say)
     * @param memory     the guest memory, memfd-backed
     * @param configSize bytes of its configuration space the driver may read (60 for blk)
     */
    public static VhostUserProxy connect(Path socket, int deviceId, GuestMemory memory, int configSize) throws IOException {
        VhostUserFrontend fe = VhostUserFrontend.connect(socket);
        try {
            return new VhostUserProxy(fe, deviceId, memory, configSize);
        } catch (IOException | RuntimeException e) {
            fe.close();
            throw e;
        }
    }

    /** The host the transport must run this device's queues on: it hands them to the backend. */
    public QueueHost host() {
        return this::forward;
    }

    @Override
    public int deviceId() {
        return deviceId;
    }

    /**
     * The backend's device-type bits, less a network device's bits that need the control queue
     * when the backend does not offer CTRL_VQ itself (a vhost-user-net backend expects its
     * front-end to serve that queue, as QEMU does; this proxy serves none, so a driver would see
     * GUEST_ANNOUNCE or MQ without CTRL_VQ, which VIRTIO 1.3, 5.1.3.1 forbids).
     */
    @Override
    public long deviceFeatures() {
        long f = backendFeatures & DEVICE_BITS;
        if (deviceId == NET_DEVICE_ID && (f & 1L << NET_F_CTRL_VQ) == 0) {
            f &= ~NET_NEEDS_CTRL_VQ;
        }
        return f;
    }

    /** Packed rings go through when the backend serves them: the rings are handed over as they are. */
    @Override
    public boolean allowsPackedRings() {
        return (backendFeatures & VirtioFeatures.bit(VirtioFeatures.RING_PACKED)) != 0;
    }

    @Override
    public int configSize() {
        return configSize;
    }

    /**
     * Reads the whole config space and returns the part asked for: libvhost-user's backends
     * (qemu-storage-daemon) ignore GET_CONFIG's offset and answer from 0, as QEMU always asks.
     */
    @Override
    public byte[] readConfig(int offset, int length) {
        try {
            byte[] all = fe.getConfig(0, configSize);
            byte[] out = new byte[length];
            System.arraycopy(all, offset, out, 0, Math.max(0, Math.min(length, all.length - offset)));
            return out;
        } catch (IOException e) {
            LOG.warn("vhost-user proxy: GET_CONFIG failed: {}", e.getMessage());
            return new byte[length];
        }
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        try {
            fe.setConfig(offset, data);
        } catch (IOException e) {
            LOG.warn("vhost-user proxy: SET_CONFIG failed: {}", e.getMessage());
        }
    }

    /**
     * 0: the backend has no generation to ask for. Its changes come as CONFIG_CHANGE_MSG, each of
     * which moves the transport's ConfigGeneration on ({@link DeviceContext#notifyConfigChange()}).
     */
    @Override
    public int configGeneration() {
        return 0;
    }

    /**
     * CONFIG_CHANGE_MSG from the backend, on the backend channel's thread: the driver is told
     * (configuration interrupt) if it has a session; it reads the new values from the backend
     * (every config read is a GET_CONFIG). Nothing here waits on the backend, which may be
     * waiting for this message's reply.
     */
    private void backendConfigChanged() {
        DeviceContext c = context;
        if (c != null) {
            c.notifyConfigChange();
        } else {
            LOG.debug("vhost-user proxy: the backend's configuration changed before DRIVER_OK");
        }
    }

    @Override
    public int queueCount() {
        return queues;
    }

    @Override
    public int maxQueueSize(int index) {
        return 1024;
    }

    /** DRIVER_OK: the negotiated features and the memory table go to the backend. */
    @Override
    public void activate(DeviceContext context) {
        this.context = context;
        try {
            long f = context.negotiatedFeatures() & ~VirtioFeatures.bit(VirtioFeatures.RING_RESET);
            if ((backendFeatures & VhostUserProtocol.F_PROTOCOL_FEATURES) != 0) {
                f |= VhostUserProtocol.F_PROTOCOL_FEATURES;
            }
            fe.setFeatures(f);
            if (!memoryShared) {
                fe.setMemTable(memory);
                memoryShared = true;
            }
        } catch (IOException e) {
            context.needsReset(0, "the vhost-user backend refused the driver's features or memory: " + e.getMessage());
        }
    }

    /** Never called: the backend serves the rings. */
    @Override
    public QueueHandler openQueue(QueueBinding binding) {
        return (DescriptorChain chain, int slot) -> {
            throw new IllegalStateException("a proxied queue is served by its vhost-user backend");
        };
    }

    @Override
    public void reset() {
        context = null;
        if (resetDevice) {
            try {
                fe.resetDevice();
            } catch (IOException e) {
                LOG.warn("vhost-user proxy: RESET_DEVICE failed: {}", e.getMessage());
            }
        }
    }

    /** Hands the queue the transport validated to the backend. */
    private QueueHost.Started forward(QueueEngine engine) {
        QueueBinding b = engine.binding();
        RingQueue ring = (RingQueue) b.queue();
        int i = b.index();
        // vhost-user's ring base: the split ring's next avail index, or the packed ring's avail
        // and used positions with their wrap counters in the low and high halves.
        int base = ring instanceof PackedQueue p ? p.availState() | p.usedState() << 16 : ((SplitQueue) ring).nextAvail();
        EventFd call;
        try {
            call = EventFd.create(true);
        } catch (ErrnoException e) {
            throw new IllegalStateException("cannot create a call eventfd: " + e.getMessage(), e);
        }
        try {
            fe.setVringNum(i, ring.size());
            fe.setVringBase(i, base);
            fe.setVringAddr(i, ring.geometry().desc(), ring.geometry().avail(), ring.geometry().used());
            fe.setVringCall(i, call);
            calls.watch(call, b.call()::signal);
            fe.setVringKick(i, b.kick());
            if ((backendFeatures & VhostUserProtocol.F_PROTOCOL_FEATURES) != 0) {
                fe.setVringEnable(i, true);
            }
            // Buffers made available before the start: the backend checks its rings when they start.
            b.kick().signal();
        } catch (IOException e) {
            calls.unwatch(call);
            call.close();
            throw new IllegalStateException("the vhost-user backend refused queue " + i + ": " + e.getMessage(), e);
        }
        return new QueueHost.Started() {
            private boolean stopped;

            /** Nothing to do first: the backend's GET_VRING_BASE stops and drains in one step. */
            @Override
            public void requestStop() {
            }

            @Override
            public boolean stop(long limitNanos) {
                if (!stopped) {
                    stopped = true;
                    try {
                        fe.getVringBase(i); // the backend stops the ring (and drains it)
                    } catch (IOException e) {
                        LOG.warn("vhost-user proxy: GET_VRING_BASE for queue {} failed: {}", i, e.getMessage());
                    }
                    calls.unwatch(call);
                    call.close();
                }
                return true;
            }

            @Override
            public void whenClosed(Runnable action) {
                action.run();
            }
        };
    }

    @Override
    public void close() {
        calls.close();
        fe.close();
    }

    @Override
    public String toString() {
        return "vhost-user proxy for device " + deviceId;
    }

    /** One thread waiting on every call eventfd; each becomes the queue's interrupt. */
    private static final class Calls implements AutoCloseable {
        private final ConcurrentHashMap<Integer, Runnable> byFd = new ConcurrentHashMap<>();
        private final EventFd wake;
        private final Thread thread;
        private volatile boolean closed;

        Calls() {
            try {
                wake = EventFd.create(true);
            } catch (ErrnoException e) {
                throw new IllegalStateException(e);
            }
            thread = Thread.ofPlatform().daemon().name("jvirtio-proxy-calls").start(this::run);
        }

        void watch(EventFd fd, Runnable interrupt) {
            byFd.put(fd.fd(), interrupt);
            wake.signal();
        }

        void unwatch(EventFd fd) {
            byFd.remove(fd.fd());
            wake.signal();
            // The thread may be in poll(2) with the fd: let it come round before the fd closes.
            synchronized (this) {
                wake.signal();
            }
        }

        private void run() {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment counter = arena.allocate(8, 8);
                MemorySegment pfds = arena.allocate(8L * 16, 8);
                while (!closed) {
                    Integer[] fds;
                    synchronized (this) {
                        fds = byFd.keySet().toArray(new Integer[0]);
                    }
                    if (pfds.byteSize() < 8L * (fds.length + 1)) { // more queues than ever before: grows (doubling), once in a while
                        pfds = arena.allocate(Math.max(pfds.byteSize() * 2, 8L * (fds.length + 1)), 8);
                    }
                    pfds.set(ValueLayout.JAVA_INT, 0, wake.fd());
                    pfds.set(ValueLayout.JAVA_SHORT, 4, (short) Libc.POLLIN);
                    for (int k = 0; k < fds.length; k++) {
                        pfds.set(ValueLayout.JAVA_INT, 8L * (k + 1), fds[k]);
                        pfds.set(ValueLayout.JAVA_SHORT, 8L * (k + 1) + 4, (short) Libc.POLLIN);
                    }
                    synchronized (this) {
                        Libc.poll(pfds, fds.length + 1, 100);
                        if ((pfds.get(ValueLayout.JAVA_SHORT, 6) & Libc.POLLIN) != 0) {
                            wake.read();
                        }
                        for (int k = 0; k < fds.length; k++) {
                            if ((pfds.get(ValueLayout.JAVA_SHORT, 8L * (k + 1) + 6) & Libc.POLLIN) != 0) {
                                Runnable r = byFd.get(fds[k]);
                                if (r != null) {
                                    Libc.eventfdRead(fds[k], counter);
                                    r.run();
                                }
                            }
                        }
                    }
                }
            } catch (RuntimeException | Error e) {
                LOG.error("vhost-user proxy: the interrupt thread ended", e);
            }
        }

        @Override
        public void close() {
            closed = true;
            wake.signal();
            try {
                thread.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            wake.close();
        }
    }
}
