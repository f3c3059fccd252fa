package org.jvirtio.transport.mmio;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.ring.QueueDriver;

import static org.jvirtio.transport.mmio.MmioRegisters.*;

/**
 * The driver side of virtio-mmio, as Linux's {@code drivers/virtio/virtio_mmio.c} and
 * {@code virtio.c} do it: probe (magic, version, device id), reset, ACKNOWLEDGE, DRIVER, the two
 * feature words, FEATURES_OK and the check that it stuck, each queue (select, check it is not
 * ready, read its maximum, program size and addresses, ready), DRIVER_OK; notifications by
 * QueueNotify; an interrupt handler that reads InterruptStatus and acknowledges exactly what it
 * read; configuration reads repeated until ConfigGeneration holds still. For tests, the demo and
 * embedders that want to check a device before a guest does.
 *
 * <p>Rings and buffers come from a range of guest memory the caller gives it (a bump allocator).
 * Not thread-safe, except that different queues may be driven from different threads once set
 * up (each {@link Queue} belongs to one thread; {@link Queue#notifyDevice()} is one register write).
 */
public final class MmioDriver {
    private final MmioWindow w;
    private final GuestMemory memory;
    private final EventFd irq;
    private final long end;
    private long next;
    private int deviceId;
    private long deviceFeatures;
    private long features;
    private int configChanges;
    private final List<Queue> queues = new ArrayList<>();

    private MmioDriver(MmioWindow w, GuestMemory memory, long base, long size, EventFd irq) {
        this.w = w;
        this.memory = memory;
        this.next = base;
        this.end = base + size;
        this.irq = irq;
    }

    /**
     * Probes the window as virtio_mmio_probe does and resets the device.
     *
     * @param memory guest memory the device sees
     * @param base   start of the range of it this driver may use for rings and buffers
     * @param size   its size
     * @param irq    what the device's interrupt line signals (the irqfd pattern), or null to poll
     *               InterruptStatus
     * @throws IOException when there is no virtio-mmio device (bad magic), the version is not 2,
     *                     or the device id is 0 (a placeholder window)
     */
    public static MmioDriver probe(MmioWindow w, GuestMemory memory, long base, long size, EventFd irq) throws IOException {
        MmioDriver d = new MmioDriver(w, memory, base, size, irq);
        int magic = d.r(MAGIC_VALUE);
        if (magic != MAGIC) {
            throw new IOException("wrong magic value 0x" + Integer.toHexString(magic) + ": not a virtio-mmio device");
        }
        int version = d.r(VERSION_REG);
        if (version != 2) {
            throw new IOException("virtio-mmio version " + version + " not supported (only 2; 1 is legacy)");
        }
        d.deviceId = d.r(DEVICE_ID);
        if (d.deviceId == 0) {
            throw new IOException("device id 0: an empty virtio-mmio window");
        }
        d.reset();
        return d;
    }

    public int deviceId() {
        return deviceId;
    }

    private int r(int off) {
        return w.read(off, 4);
    }

    private void wr(int off, int v) {
        w.write(off, 4, v);
    }

    private void addStatus(int bits) {
        wr(STATUS, r(STATUS) | bits);
    }

    /** Writes 0 to Status: the device resets, every queue with it. */
    public void reset() {
        wr(STATUS, 0);
        queues.clear();
    }

    /** The device's status register. */
    public int status() {
        return r(STATUS);
    }

    /**
     * ACKNOWLEDGE, DRIVER, the features offered that are also {@code wanted}, FEATURES_OK, and
     * the check that the device kept FEATURES_OK.
     *
     * @return the negotiated features
     * @throws IOException when the device refuses them
     */
    public long negotiate(long wanted) throws IOException {
        addStatus(DeviceStatus.ACKNOWLEDGE);
        addStatus(DeviceStatus.DRIVER);
        wr(DEVICE_FEATURES_SEL, 1);
        deviceFeatures = (long) r(DEVICE_FEATURES) << 32;
        wr(DEVICE_FEATURES_SEL, 0);
        deviceFeatures |= Integer.toUnsignedLong(r(DEVICE_FEATURES));
        features = deviceFeatures & wanted;
        wr(DRIVER_FEATURES_SEL, 1);
        wr(DRIVER_FEATURES, (int) (features >>> 32));
        wr(DRIVER_FEATURES_SEL, 0);
        wr(DRIVER_FEATURES, (int) features);
        addStatus(DeviceStatus.FEATURES_OK);
        if ((r(STATUS) & DeviceStatus.FEATURES_OK) == 0) {
            addStatus(DeviceStatus.FAILED);
            throw new IOException("the device refuses features 0x" + Long.toHexString(features));
        }
        return features;
    }

    public long deviceFeatures() {
        return deviceFeatures;
    }

    public long features() {
        return features;
    }

    /** Reserves {@code bytes} of the driver's guest memory range, aligned to {@code alignment}. */
    public long allocate(long bytes, long alignment) {
        long at = (next + alignment - 1) & -alignment;
        if (at + bytes > end) {
            throw new IllegalStateException("out of driver memory: " + bytes + " bytes wanted, " + (end - at) + " left");
        }
        next = at + bytes;
        return at;
    }

    /**
     * Sets up queue {@code index} as vm_setup_vq does, with {@code size} entries (or the device's
     * maximum if smaller), split or packed as the negotiated features say.
     *
     * @throws IOException when the queue is already set up or the device does not have it
     */
    public Queue setupQueue(int index, int size) throws IOException {
        wr(QUEUE_SEL, index);
        if (r(QUEUE_READY) != 0) {
            throw new IOException("queue " + index + " is already set up");
        }
        int max = r(QUEUE_NUM_MAX);
        if (max == 0) {
            throw new IOException("the device has no queue " + index);
        }
        // A split ring's size is a power of two; a packed ring may have any size (Linux still
        // rounds, as vring_create_virtqueue does for both).
        int num = Integer.highestOneBit(Math.min(size, max));
        long base = allocate(QueueDriver.ringBytes(num, features), 4096);
        QueueDriver ring = QueueDriver.at(memory, base, num, features, 0, 0);
        wr(QUEUE_NUM, num);
        wr(QUEUE_DESC_LOW, (int) ring.descAddr());
        wr(QUEUE_DESC_HIGH, (int) (ring.descAddr() >>> 32));
        wr(QUEUE_DRIVER_LOW, (int) ring.availAddr());
        wr(QUEUE_DRIVER_HIGH, (int) (ring.availAddr() >>> 32));
        wr(QUEUE_DEVICE_LOW, (int) ring.usedAddr());
        wr(QUEUE_DEVICE_HIGH, (int) (ring.usedAddr() >>> 32));
        wr(QUEUE_READY, 1);
        if (r(QUEUE_READY) != 1) {
            throw new IOException("the device did not take queue " + index + " (status " + DeviceStatus.describe(r(STATUS)) + ")");
        }
        Queue q = new Queue(index, ring);
        queues.add(q);
        return q;
    }

    /** Takes queue {@code index} down again (vm_del_vq). */
    public void deleteQueue(int index) throws IOException {
        wr(QUEUE_SEL, index);
        wr(QUEUE_READY, 0);
        if (r(QUEUE_READY) != 0) {
            throw new IOException("queue " + index + " still ready after QueueReady 0");
        }
        queues.removeIf(q -> q.index == index);
    }

    /** DRIVER_OK: the device may use its queues from now on. */
    public void driverOk() {
        addStatus(DeviceStatus.DRIVER_OK);
    }

    /**
     * The interrupt handler (vm_interrupt): reads InterruptStatus and acknowledges exactly those
     * bits. Returns them; a configuration change is counted ({@link #configChanges()}).
     */
    public int interrupt() {
        int status = r(INTERRUPT_STATUS);
        if (status != 0) {
            wr(INTERRUPT_ACK, status);
        }
        if ((status & INT_CONFIG) != 0) {
            configChanges++;
        }
        return status;
    }

    /**
     * Waits up to {@code millis} for the interrupt line (or, without an irq eventfd, for
     * InterruptStatus to be non-zero), then runs the handler.
     *
     * @return the InterruptStatus bits handled (0 on a timeout)
     */
    public int awaitInterrupt(int millis) throws IOException {
        long deadline = System.nanoTime() + millis * 1_000_000L;
        while (true) {
            if (irq != null) {
                int left = (int) Math.max(0, (deadline - System.nanoTime()) / 1_000_000);
                try {
                    irq.await(left);
                } catch (ErrnoException e) {
                    throw new IOException("waiting for the interrupt: " + e.getMessage(), e);
                }
            }
            int s = interrupt();
            if (s != 0 || System.nanoTime() - deadline > 0) {
                return s;
            }
            if (irq == null) {
                Thread.onSpinWait();
            }
        }
    }

    /** Configuration changes the interrupt handler saw. */
    public int configChanges() {
        return configChanges;
    }

    /** Reads {@code length} bytes of configuration space, again until ConfigGeneration holds still. */
    public byte[] readConfig(int offset, int length) {
        byte[] out = new byte[length];
        int before;
        do {
            before = r(CONFIG_GENERATION);
            for (int i = 0; i < length; ) {
                int at = offset + i;
                int width = (at & 3) == 0 && length - i >= 4 ? 4 : (at & 1) == 0 && length - i >= 2 ? 2 : 1;
                int v = w.read(CONFIG + at, width);
                for (int k = 0; k < width; k++) {
                    out[i + k] = (byte) (v >>> (8 * k));
                }
                i += width;
            }
        } while (before != r(CONFIG_GENERATION));
        return out;
    }

    /** Writes configuration space bytes one at a time. */
    public void writeConfig(int offset, byte[] data) {
        for (int i = 0; i < data.length; i++) {
            w.write(CONFIG + offset + i, 1, data[i] & 0xff);
        }
    }

    /** One set-up queue: its driver-side ring, and the doorbell. */
    public final class Queue {
        private final int index;
        private final QueueDriver ring;

        private Queue(int index, QueueDriver ring) {
            this.index = index;
            this.ring = ring;
        }

        public int index() {
            return index;
        }

        public QueueDriver ring() {
            return ring;
        }

        /** Publishes what was added and writes QueueNotify when the device wants a notification. */
        public void publish() {
            if (ring.publish()) {
                notifyDevice();
            }
        }

        /** QueueNotify with this queue's index (vm_notify). */
        public void notifyDevice() {
            w.write(QUEUE_NOTIFY, 4, index);
        }

        /**
         * Takes the used elements the device returned, waiting on the interrupt as a guest does
         * (interrupts re-enabled before each wait, so none is missed).
         *
         * @return how many were taken: 0 when none came within {@code timeoutMillis}
         */
        public int awaitUsed(QueueDriver.UsedHandler handler, long timeoutMillis) throws IOException {
            return ring.awaitUsed(handler, timeoutMillis, millis -> awaitInterrupt(Math.min(millis, 100)));
        }
    }
}
