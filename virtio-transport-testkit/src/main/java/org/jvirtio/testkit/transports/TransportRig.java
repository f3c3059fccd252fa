package org.jvirtio.testkit.transports;

import java.io.IOException;
import java.nio.file.Path;
import java.util.function.BooleanSupplier;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.QueueHost;

/**
 * A device under test behind one transport, driven by a test that plays the guest driver: it
 * lays out rings in guest memory, asks the rig to start them, puts chains on them, and lets the
 * rig deliver the notification and wait for the device. The same test code then runs directly
 * (the queue engine on the test's thread), over vhost-user (a real backend on a Unix socket,
 * the Java front-end), and over virtio-mmio (the register window, the Java MMIO driver's steps),
 * so that a device is checked against every transport, and every transport against the same
 * expectations.
 *
 * <pre>{@code
 * @ParameterizedTest
 * @EnumSource(TransportRig.Kind.class)
 * void echoes(TransportRig.Kind kind) throws Exception {
 *     try (TransportRig rig = kind.start(new MyDevice(), memory, ~0L)) {
 *         QueueDriver d = QueueDriver.at(memory, 0x1000, 64, rig.features(), 0, 0); // split or packed, as negotiated
 *         rig.startQueue(0, d);
 *         d.add(...);
 *         d.publish();
 *         assertTrue(rig.kickAndWait(0, d::hasUsed, 5000));
 *     }
 * }
 * }</pre>
 */
public interface TransportRig extends AutoCloseable {
    /** Every feature but VIRTIO_F_RING_PACKED: for a {@code wanted} mask that keeps the rings split. */
    long ALL_SPLIT = ~VirtioFeatures.bit(VirtioFeatures.RING_PACKED);

    /** The transports a rig can put a device behind. */
    enum Kind {
        /** The queue engine on the caller's thread: what the device does, without a transport. */
        DIRECT,
        /** A {@code VhostUserBackend} on a Unix socket, driven by the Java front-end. */
        VHOST_USER,
        /** An {@code MmioTransport} window, driven register by register as Linux's driver does. */
        MMIO;

        /**
         * Puts {@code device} behind this transport over {@code memory} (memfd-backed for
         * vhost-user, which shares it) and negotiates the features offered that are also in
         * {@code wanted}. Queues run on a thread each (vhost-user, MMIO).
         */
        public TransportRig start(VirtioDevice device, GuestMemory memory, long wanted) throws IOException {
            return start(device, memory, wanted, QueueHost.THREAD_PER_QUEUE);
        }

        /** As {@link #start(VirtioDevice, GuestMemory, long)}, with queues on {@code host}. */
        public TransportRig start(VirtioDevice device, GuestMemory memory, long wanted, QueueHost host) throws IOException {
            return switch (this) {
                case DIRECT -> new DirectRig(device, memory, wanted);
                case VHOST_USER -> new VhostUserRig(device, memory, wanted, host);
                case MMIO -> new MmioRig(device, memory, wanted, host);
            };
        }
    }

    Kind kind();

    /** The negotiated virtio features. */
    long features();

    /** The guest memory the device sees. */
    GuestMemory memory();

    /**
     * Starts queue {@code index} with {@code size} entries at these guest addresses (descriptor
     * table, avail ring, used ring; packed: descriptor ring, driver and device areas), fresh. Hostile placements are the transport's to
     * refuse: then the device is left needing a reset ({@link #needsReset()}) or the queue
     * never runs, as the transport has it.
     */
    void startQueue(int index, int size, long desc, long avail, long used) throws IOException;

    /** {@link #startQueue(int, int, long, long, long)} where {@code ring} lies (a driver of the negotiated layout). */
    default void startQueue(int index, org.jvirtio.ring.QueueDriver ring) throws IOException {
        startQueue(index, ring.size(), ring.descAddr(), ring.availAddr(), ring.usedAddr());
    }

    /**
     * Notifies queue {@code index} (a kick, a QueueNotify, or a serve on this thread) and waits
     * up to {@code millis} until {@code done} holds.
     *
     * @return whether it held
     */
    boolean kickAndWait(int index, BooleanSupplier done, long millis);

    /**
     * Stops queue {@code index} (GET_VRING_BASE, QueueReady 0, or the engine's quiesce): returns
     * once nothing of it is in flight, with where it stopped (split: the next avail index; packed:
     * the avail position and wrap counter, vhost-user adding the used half; MMIO cannot say: -1).
     */
    int stopQueue(int index) throws IOException;

    /** Whether the device reported DEVICE_NEEDS_RESET (a ring it found broken). */
    boolean needsReset() throws IOException;

    /** Resets the device (and stops its queues); the rig may be started again with {@link #restart}. */
    void reset() throws IOException;

    /** Negotiates again after a {@link #reset()}. */
    void restart(long wanted) throws IOException;

    /** Stops everything and releases the transport (not the memory, which is the caller's). */
    @Override
    void close() throws IOException;

    /** A private directory for a socket (vhost-user rigs). */
    static Path socketDirectory() throws IOException {
        return java.nio.file.Files.createTempDirectory("jvirtio-rig");
    }
}
