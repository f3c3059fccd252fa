package org.jvirtio.transport.mmio;

import static org.jvirtio.transport.mmio.MmioRegisters.*;

import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.RateLimitedLog;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.host.QueueHost;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitRingLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One virtio device behind a virtio-mmio version 2 register window (VIRTIO 1.3, 4.2.2), for a
 * VMM that traps its guest's accesses to the window and hands them over: {@link #read} and
 * {@link #write} from its MMIO exit handler, with the offset inside the window and the access
 * width. The device is any {@link VirtioDevice}, unchanged: its queues run on the same
 * {@link QueueHost}s and engine as over vhost-user.
 *
 * <p>The VMM supplies the guest memory, the host for the queues and the interrupt line (level:
 * raised while InterruptStatus is non-zero; or an eventfd, the irqfd pattern). Queue notifications
 * (QueueNotify) signal the queue's kick eventfd, which a VMM with KVM may register as an ioeventfd
 * itself ({@link #kickFd}) so that notifications never exit to it.
 *
 * <pre>{@code
 * GuestMemory ram = ...;                                   // the guest's RAM, mapped by the VMM
 * QueueHost host = new IoThreads(1, 32);
 * MmioTransport blk = new MmioTransport(new VirtioBlkDevice(new RamBackend(64 << 20), BlkOptions.defaults()),
 *         ram, host, new InterruptLine() {
 *             public void raise() { irqChip.setLevel(5, true); }
 *             public void lower() { irqChip.setLevel(5, false); }
 *         });
 * // in the MMIO exit handler, for an access at guest physical address gpa of width bytes:
 * if (gpa >= 0xd000_0000L && gpa < 0xd000_0000L + MmioRegisters.WINDOW) {
 *     if (isWrite) blk.write(gpa - 0xd000_0000L, width, value);
 *     else value = blk.read(gpa - 0xd000_0000L, width);
 * }
 * // the guest kernel finds it with virtio_mmio.device=512@0xd0000000:5 (or a device tree node)
 * }</pre>
 *
 * <p>Semantics as the spec has them, where peers differ: InterruptStatus bits stay set until
 * acknowledged and an ACK clears only the bits written; a write of 0 to Status resets the device
 * (queues stopped, every QueueReady and InterruptStatus cleared); queue registers change only while
 * the queue is not ready, and the device reads none while QueueReady is 0; FEATURES_OK reads back
 * clear when the driver's features are refused; ConfigGeneration moves exactly when the config
 * space changes; a broken ring, or a queue refused at QueueReady, sets DEVICE_NEEDS_RESET,
 * announced with a configuration interrupt only once DRIVER_OK is set (at DRIVER_OK when it
 * was set before). An access that is misaligned, of a wrong width, outside the window, or to a
 * register that does not allow it is logged (rate-limited) and ignored; reads of it return 0.
 * Nothing throws into the VMM's thread. Legacy (version 1) devices are not offered.
 *
 * <p>Thread-safe: register accesses from several vCPU threads are serialised; interrupts come
 * from the queue threads.
 */
public final class MmioTransport implements MmioWindow, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MmioTransport.class);
    /** The guest decides what it touches: bad accesses are logged at a rate, not each. */
    private static final RateLimitedLog BAD_ACCESS = RateLimitedLog.perSecond(LOG);

    private final VirtioDevice device;
    private final GuestMemory memory;
    private final DeviceQueues queues;
    private final long offered;
    private final MmioQueue[] q;
    private final InterruptStatus interrupts;
    private final StatusRegister status;
    private final Context context = new Context();

    // Driver-written registers; guarded by this.
    private int deviceFeaturesSel;
    private int driverFeaturesSel;
    private long driverFeatures;
    private long negotiated;
    private int queueSel;
    private int shmSel;
    private boolean activated;
    private boolean closed;

    /**
     * @param device the device behind the window
     * @param memory the guest's memory, as the VMM mapped it (kept mapped by the caller while
     *               this transport lives; each running queue retains it too)
     * @param host   what runs the queues
     * @param line   the device's interrupt line
     */
    public MmioTransport(VirtioDevice device, GuestMemory memory, QueueHost host, InterruptLine line) {
        this.device = device;
        this.memory = memory;
        this.interrupts = new InterruptStatus(line);
        this.status = new StatusRegister(interrupts);
        this.queues = new DeviceQueues(device, host);
        this.offered = FeatureNegotiation.offeredWithPacked(device) | VirtioFeatures.bit(VirtioFeatures.RING_RESET);
        this.q = new MmioQueue[device.queueCount()];
        try {
            for (int i = 0; i < q.length; i++) {
                q[i] = new MmioQueue(i, Math.min(device.maxQueueSize(i), SplitRingLayout.MAX_SIZE), EventFd.create(true), this::newRing);
            }
        } catch (ErrnoException e) {
            for (MmioQueue m : q) {
                if (m != null) {
                    m.kick.close();
                }
            }
            throw new IllegalStateException("cannot create queue eventfds: " + e.getMessage(), e);
        }
    }

    private RingQueue newRing(int index, long features) {
        RingQueue r = RingQueue.create(index, device.maxChainLength(), features);
        r.setViolationListener((queue, v) -> context.needsReset(queue.index(), v.message()));
        return r;
    }

    public VirtioDevice device() {
        return device;
    }

    /**
     * The eventfd QueueNotify signals for queue {@code index}: a VMM with KVM registers it as an
     * ioeventfd on the QueueNotify address (datamatch the queue index) and the guest's
     * notifications reach the queue without an exit.
     */
    public int kickFd(int index) {
        return q[index].kick.fd();
    }

    /** The InterruptStatus bits now (for a VMM that samples the line). */
    public int interruptStatus() {
        return interrupts.get();
    }

    // ------------------------------------------------------------------ accesses

    /**
     * A guest read of {@code width} bytes at {@code offset} in the window. Returns the value
     * (zero-extended); an access the window does not allow reads 0 and is logged.
     */
    @Override
    public synchronized int read(long offset, int width) {
        try {
            if (offset >= CONFIG && offset < WINDOW) {
                return ConfigWindow.read(device, (int) (offset - CONFIG), width);
            }
            if (!register(offset, width, "read")) {
                return 0;
            }
            return switch ((int) offset) {
                case MAGIC_VALUE -> MAGIC;
                case VERSION_REG -> VERSION;
                case DEVICE_ID -> device.deviceId();
                case VENDOR_ID -> VENDOR;
                case DEVICE_FEATURES -> deviceFeaturesSel == 0 ? (int) offered : deviceFeaturesSel == 1 ? (int) (offered >>> 32) : 0;
                case QUEUE_NUM_MAX -> selected() == null ? 0 : selected().max;
                case QUEUE_READY -> selected() != null && selected().ready() ? 1 : 0;
                case INTERRUPT_STATUS -> interrupts.get();
                case STATUS -> status.get();
                case SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH -> -1; // no shared memory regions
                case QUEUE_RESET -> 0; // a reset completes before the write returns
                case CONFIG_GENERATION -> device.configGeneration() + status.configChanges();
                case DEVICE_FEATURES_SEL, DRIVER_FEATURES, DRIVER_FEATURES_SEL, QUEUE_SEL, QUEUE_NUM, QUEUE_NOTIFY, INTERRUPT_ACK,
                     QUEUE_DESC_LOW, QUEUE_DESC_HIGH, QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH,
                     SHM_SEL -> bad("read of write-only register 0x%x", offset);
                default -> bad("read of unknown register 0x%x", offset);
            };
        } catch (RuntimeException | Error e) {
            LOG.error("virtio-mmio: read at 0x{} failed", Long.toHexString(offset), e);
            return 0;
        }
    }

    /** A guest write of {@code width} bytes of {@code value} at {@code offset} in the window. */
    @Override
    public synchronized void write(long offset, int width, int value) {
        try {
            if (offset >= CONFIG && offset < WINDOW) {
                ConfigWindow.write(device, (int) (offset - CONFIG), width, value);
                return;
            }
            if (!register(offset, width, "write")) {
                return;
            }
            switch ((int) offset) {
                case DEVICE_FEATURES_SEL -> deviceFeaturesSel = value;
                case DRIVER_FEATURES -> writeDriverFeatures(value);
                case DRIVER_FEATURES_SEL -> driverFeaturesSel = value;
                case QUEUE_SEL -> queueSel = value;
                case QUEUE_NUM -> writeQueue("QueueNum", m -> m.num = value);
                case QUEUE_READY -> writeQueueReady(value);
                case QUEUE_NOTIFY -> notify(value);
                case INTERRUPT_ACK -> interrupts.acknowledge(value);
                case STATUS -> writeStatus(value);
                case QUEUE_DESC_LOW -> writeQueue("QueueDescLow", m -> m.desc = low(m.desc, value));
                case QUEUE_DESC_HIGH -> writeQueue("QueueDescHigh", m -> m.desc = high(m.desc, value));
                case QUEUE_DRIVER_LOW -> writeQueue("QueueDriverLow", m -> m.driver = low(m.driver, value));
                case QUEUE_DRIVER_HIGH -> writeQueue("QueueDriverHigh", m -> m.driver = high(m.driver, value));
                case QUEUE_DEVICE_LOW -> writeQueue("QueueDeviceLow", m -> m.device = low(m.device, value));
                case QUEUE_DEVICE_HIGH -> writeQueue("QueueDeviceHigh", m -> m.device = high(m.device, value));
                case SHM_SEL -> shmSel = value;
                case QUEUE_RESET -> resetQueue(value);
                case MAGIC_VALUE, VERSION_REG, DEVICE_ID, VENDOR_ID, DEVICE_FEATURES, QUEUE_NUM_MAX, INTERRUPT_STATUS, SHM_LEN_LOW,
                     SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH, CONFIG_GENERATION -> bad("write of read-only register 0x%x", offset);
                default -> bad("write of unknown register 0x%x", offset);
            }
        } catch (RuntimeException | Error e) {
            LOG.error("virtio-mmio: write of 0x{} at 0x{} failed", Integer.toHexString(value), Long.toHexString(offset), e);
        }
    }

    /** Registers are 32 bits wide and aligned; the window ends at {@link #WINDOW}. */
    private boolean register(long offset, int width, String what) {
        if (offset < 0 || offset >= WINDOW) {
            bad(what + " at 0x%x, outside the window", offset);
            return false;
        }
        if (width != 4 || (offset & 3) != 0) {
            BAD_ACCESS.warn("virtio-mmio: {} of {} bytes at register 0x{}: registers take aligned 32-bit accesses; ignored", what,
                    width, Long.toHexString(offset));
            return false;
        }
        return true;
    }

    private static int bad(String format, long offset) {
        BAD_ACCESS.warn("virtio-mmio: " + String.format(format, offset) + "; ignored");
        return 0;
    }

    private MmioQueue selected() {
        return queueSel >= 0 && queueSel < q.length ? q[queueSel] : null;
    }

    private static long low(long v, int lo) {
        return (v & 0xffff_ffff_0000_0000L) | Integer.toUnsignedLong(lo);
    }

    private static long high(long v, int hi) {
        return (v & 0xffff_ffffL) | ((long) hi << 32);
    }

    // ------------------------------------------------------------------ features and status

    private void writeDriverFeatures(int value) {
        if ((status.get() & DeviceStatus.FEATURES_OK) != 0) {
            BAD_ACCESS.warn("virtio-mmio: DriverFeatures written after FEATURES_OK; ignored");
            return;
        }
        if (driverFeaturesSel == 0) {
            driverFeatures = low(driverFeatures, value);
        } else if (driverFeaturesSel == 1) {
            driverFeatures = high(driverFeatures, value);
        } else if (value != 0) {
            BAD_ACCESS.warn("virtio-mmio: DriverFeatures word {} set to 0x{}; the device offers none there; ignored", driverFeaturesSel,
                    Integer.toHexString(value));
        }
    }

    private void writeStatus(int value) {
        if (value == 0) {
            reset();
            return;
        }
        int current = status.get();
        if (!DeviceStatus.isLegalTransition(current, value)) {
            BAD_ACCESS.warn("virtio-mmio: status {} cannot follow {}; ignored", DeviceStatus.describe(value), DeviceStatus.describe(current));
            return;
        }
        int next = value;
        if ((value & DeviceStatus.FEATURES_OK) != 0 && (current & DeviceStatus.FEATURES_OK) == 0) {
            FeatureNegotiation.Result r = FeatureNegotiation.negotiate(offered, driverFeatures, true);
            if (!r.accepted()) {
                LOG.warn("virtio-mmio: FEATURES_OK refused: {}", r.message());
                next &= ~(DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
            } else {
                negotiated = r.features();
            }
        }
        status.write(next);
        if ((next & DeviceStatus.DRIVER_OK) != 0 && (current & DeviceStatus.DRIVER_OK) == 0) {
            if (!activated) {
                try {
                    device.activate(context);
                } catch (RuntimeException e) {
                    context.deviceNeedsReset("the device failed to activate: " + e, e);
                    return;
                }
                activated = true;
            }
            for (MmioQueue m : q) {
                startIfReady(m);
            }
        }
    }

    /** Status 0: every queue stops, the device resets, every register returns to its initial value. */
    private void reset() {
        for (MmioQueue m : q) {
            m.reset(queues);
        }
        if (activated) {
            device.reset();
            activated = false;
        }
        deviceFeaturesSel = 0;
        driverFeaturesSel = 0;
        driverFeatures = 0;
        negotiated = 0;
        queueSel = 0;
        shmSel = 0;
        status.clear();
        interrupts.clear();
    }

    // ------------------------------------------------------------------ queues

    private void writeQueue(String name, java.util.function.Consumer<MmioQueue> set) {
        MmioQueue m = selected();
        if (m == null) {
            BAD_ACCESS.warn("virtio-mmio: {} for queue {}, which the device does not have; ignored", name, Integer.toUnsignedString(queueSel));
            return;
        }
        if (m.ready()) {
            BAD_ACCESS.warn("virtio-mmio: {} of queue {} written while it is ready; ignored", name, m.index);
            return;
        }
        set.accept(m);
    }

    private void writeQueueReady(int value) {
        MmioQueue m = selected();
        if (m == null) {
            BAD_ACCESS.warn("virtio-mmio: QueueReady for queue {}, which the device does not have; ignored", Integer.toUnsignedString(queueSel));
            return;
        }
        if (value == 0) {
            m.stop(queues);
            return;
        }
        if (value != 1) {
            BAD_ACCESS.warn("virtio-mmio: QueueReady of queue {} written with {}; ignored", m.index, Integer.toUnsignedString(value));
            return;
        }
        if (m.ready()) {
            return;
        }
        String why = m.makeReady(memory, negotiated != 0 ? negotiated : driverFeatures & offered);
        if (why != null) {
            context.needsReset(m.index, why);
            return;
        }
        startIfReady(m);
    }

    /**
     * Starts a ready queue once DRIVER_OK is set. A queue that cannot start (the device refused to
     * open it, its thread or I/O could not be set up) stays unserved and sets DEVICE_NEEDS_RESET,
     * so the driver learns of it instead of waiting on a queue nobody serves. Nothing starts on a
     * device whose activation failed.
     */
    private void startIfReady(MmioQueue m) {
        if (activated && status.has(DeviceStatus.DRIVER_OK)) {
            try {
                m.start(queues, memory, () -> interrupts.raise(INT_VRING));
            } catch (RuntimeException e) {
                LOG.error("virtio-mmio: queue {} failed to start", m.index, e);
                context.needsReset(m.index, "it failed to start: " + e.getMessage());
            }
        }
    }

    private void resetQueue(int value) {
        if (!VirtioFeatures.has(negotiated, VirtioFeatures.RING_RESET)) {
            BAD_ACCESS.warn("virtio-mmio: QueueReset written without VIRTIO_F_RING_RESET negotiated; ignored");
            return;
        }
        MmioQueue m = selected();
        if (m == null || value != 1) {
            BAD_ACCESS.warn("virtio-mmio: QueueReset of queue {} with {}; ignored", Integer.toUnsignedString(queueSel), value);
            return;
        }
        m.reset(queues);
    }

    private void notify(int value) {
        int index = value & 0xffff; // with NOTIFICATION_DATA the upper half carries the avail position
        if (index >= q.length) {
            BAD_ACCESS.warn("virtio-mmio: QueueNotify for queue {}, which the device does not have; ignored", index);
            return;
        }
        MmioQueue m = q[index];
        if (!m.ready()) {
            BAD_ACCESS.warn("virtio-mmio: QueueNotify for queue {}, which is not ready; ignored", index);
            return;
        }
        m.kick.signal();
    }

    /** Stops every queue and resets the device; the kick eventfds are closed. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        reset();
        for (MmioQueue m : q) {
            m.kick.close();
        }
    }

    /** What the device sees of the transport. */
    private final class Context implements DeviceContext {
        @Override
        public long negotiatedFeatures() {
            return negotiated;
        }

        @Override
        public void notifyConfigChange() {
            status.configChanged();
        }

        /** Sets DEVICE_NEEDS_RESET, announced only once DRIVER_OK is set ({@link StatusRegister}). */
        @Override
        public void needsReset(int queue, String reason) {
            LOG.warn("virtio-mmio: queue {}: {}; DEVICE_NEEDS_RESET", queue, reason);
            status.needsReset();
        }

        /** The device as a whole cannot go on (its activation failed). */
        void deviceNeedsReset(String reason, RuntimeException cause) {
            LOG.error("virtio-mmio: {}; DEVICE_NEEDS_RESET", reason, cause);
            status.needsReset();
        }
    }

    @Override
    public String toString() {
        return "virtio-mmio device " + device.deviceId() + " (" + DeviceStatus.describe(status.get()) + ")";
    }
}
