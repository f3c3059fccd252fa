package org.jvirtio.api;

/**
 * The SPI every jvirtio device implements: what the device is (id, features, config space,
 * queues) and what it does with a queue. A transport (vhost-user, MMIO) drives it; the device
 * never parses a ring or a transport message, never negotiates ring features and never owns a
 * thread. Most devices extend {@link AbstractVirtioDevice}, which has the defaults.
 *
 * <p>The transport owns negotiation: it offers {@link VirtioFeatures#RING_FEATURES} on top of
 * {@link #deviceFeatures()} (see {@link FeatureNegotiation#offered}), requires VERSION_1, checks
 * status transitions, and derives transport options from what the device has (vhost-user offers
 * PROTOCOL_F_CONFIG only with a config space, PROTOCOL_F_MQ only with more than one queue).
 *
 * <p>The framework owns the threads: for each queue the transport starts, it calls
 * {@link #openQueue} and runs the returned {@link QueueHandler} on a queue host
 * (thread-per-queue or epoll I/O threads, chosen by configuration, not by the device).
 *
 * <p>Calls come from the transport's control thread, in this order per driver session:
 * {@link #activate(DeviceContext)}, then {@link #openQueue} for each queue that starts (again
 * after each stop), then {@link #reset()} once every queue has stopped. Feature and
 * configuration accessors may be called at any time, from the control thread.
 */
public interface VirtioDevice {
    /** The longest chain accepted by default, in buffers (QEMU's VIRTQUEUE_MAX_SIZE). */
    int DEFAULT_MAX_CHAIN_LENGTH = 1024;

    /** Device type (VIRTIO 1.3, 5: 2 = block, 4 = entropy, ...). */
    int deviceId();

    /**
     * The device-type features offered (VIRTIO 1.3, 5.x.3). Ring and transport features
     * (VERSION_1, INDIRECT_DESC, EVENT_IDX) are the transport's to offer; a device lists them
     * only to ask for one the transport does not add itself.
     */
    long deviceFeatures();

    /** Size of the device configuration space in bytes; 0 for none. */
    int configSize();

    /**
     * Reads {@code length} bytes of configuration space at {@code offset}; the transport has
     * checked {@code offset + length <= configSize()}. Multi-byte fields are little-endian.
     */
    byte[] readConfig(int offset, int length);

    /** Writes configuration space (only the fields the device type makes writable change). */
    void writeConfig(int offset, byte[] data);

    /**
     * The configuration generation (VIRTIO 1.3, 2.5.1): changes whenever the config space
     * changes, so a driver can detect a torn multi-field read.
     */
    int configGeneration();

    /** Number of virtqueues the device offers. */
    int queueCount();

    /** Largest size queue {@code index} may be given (a power of two, at most 32768). */
    int maxQueueSize(int index);

    /**
     * The most buffers one chain may have (after translation; a descriptor that crosses a guest
     * memory region counts twice). A longer chain is a ring violation. Bounds what a hostile
     * driver can make the device allocate.
     */
    default int maxChainLength() {
        return DEFAULT_MAX_CHAIN_LENGTH;
    }

    /**
     * Whether the transport may offer packed virtqueues (VIRTIO_F_RING_PACKED) for this device.
     * Every device whose queues the framework's engine serves works on either layout unchanged,
     * so the default is yes; a device that hands its rings to someone else (the vhost-user proxy)
     * says no unless that one speaks packed too.
     */
    default boolean allowsPackedRings() {
        return true;
    }

    /**
     * Device-type features offered only where the front-end serves the device's control queue
     * itself, so that the device never sees it: QEMU keeps the control queue of a vhost-user-net
     * device (CTRL_VQ is QEMU's to offer, not the backend's), and a network device's
     * GUEST_ANNOUNCE, which needs it, is one of these. vhost-user offers them on top of
     * {@link #deviceFeatures()}; MMIO, which hands the device every queue, does not (a driver
     * would see GUEST_ANNOUNCE without CTRL_VQ, which VIRTIO 1.3, 5.1.3.1 forbids and Linux
     * refuses). None by default.
     */
    default long frontEndControlQueueFeatures() {
        return 0;
    }

    /** A driver session starts with the negotiated features. No queue runs yet. */
    void activate(DeviceContext context);

    /**
     * Queue {@code queue.index()} starts: returns what serves it. Called on the control thread;
     * the handler's own methods are then called on the thread that owns the queue. The engine
     * checks the ring once after starting, without waiting for a kick (the driver may have added
     * buffers before the start).
     */
    QueueHandler openQueue(QueueBinding queue);

    /** Ends the driver session (every queue has stopped by now) and forgets per-driver state. */
    void reset();

    /**
     * Whether the device can announce a guest's address on its network after a live migration
     * ({@link #announce}); vhost-user offers PROTOCOL_F_RARP only then. A network device says yes.
     */
    default boolean announces() {
        return false;
    }

    /**
     * After a live migration, for a guest that cannot announce itself (no GUEST_ANNOUNCE), the
     * front-end asks the device to announce {@code mac} (48 bits) on its network, as QEMU does with
     * vhost-user's SEND_RARP: the device sends a frame from that address (a RARP request, as QEMU's
     * own network back-ends do) so that switches learn where the guest is now. From the transport's
     * control thread.
     */
    default void announce(long mac) {
    }
}
