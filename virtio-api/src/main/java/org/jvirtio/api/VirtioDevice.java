package org.jvirtio.api;

/**
 * The SPI every jvirtio device implements. A transport (vhost-user, MMIO) drives it; the device
 * never parses a ring or a transport message itself.
 *
 * <p>All calls come from the transport's control thread, in this order per driver session:
 * {@link #activate(DeviceContext)}, then any number of {@link #startQueue(QueueBinding)} /
 * {@link #stopQueue(int)} pairs per queue, then {@link #reset()}. Feature and configuration
 * accessors may be called at any time. A transport that must change something a running queue
 * uses (guest memory, the call eventfd, ring addresses) stops the queue, changes it, and starts
 * it again: the device never sees a queue change under its feet.
 */
public interface VirtioDevice {
    /** Device type (VIRTIO 1.3, 5: 2 = block, 4 = entropy, ...). */
    int deviceId();

    /** Features offered, including the ring features (VERSION_1, EVENT_IDX, INDIRECT_DESC) supported. */
    long deviceFeatures();

    /** Size of the device configuration space in bytes. */
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

    /** A driver session starts with the negotiated features. No queue runs yet. */
    void activate(DeviceContext context);

    /**
     * Starts serving a queue on a thread the device owns. The device must check the ring once
     * after starting even without a kick: the driver may have added buffers (and kicked) before
     * the queue was started.
     */
    void startQueue(QueueBinding queue);

    /**
     * Stops serving queue {@code index}. When this returns, every chain popped from it has been
     * returned with {@code addUsed} and published, and the device no longer touches the queue,
     * its kick or its call. Stopping a queue that is not running does nothing.
     */
    void stopQueue(int index);

    /** Ends the driver session: stops every queue (as {@link #stopQueue}) and forgets per-driver state. */
    void reset();
}
