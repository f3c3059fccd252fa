package org.jvirtio.api;

/**
 * The SPI every jvirtio device implements. A transport (vhost-user, MMIO) drives it; the device
 * never parses a ring or a transport message itself.
 *
 * <p>Call order, from the transport's single control thread: {@link #deviceFeatures()} and
 * config accesses at any time; {@link #activate(DeviceContext)} once the driver is ready; then
 * {@link #reset()} before any new activation.
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

    /** Starts processing with the negotiated features and the driver's queues. */
    void activate(DeviceContext context);

    /** Stops processing and forgets per-driver state; all chains are returned before it returns. */
    void reset();
}
