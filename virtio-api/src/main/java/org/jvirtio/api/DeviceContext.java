package org.jvirtio.api;

/**
 * What a transport hands a device when the driver sets DRIVER_OK (or a vhost-user frontend
 * starts the rings): the negotiated features, guest memory and the queues.
 */
public interface DeviceContext {
    /** The features both sides agreed on. */
    long negotiatedFeatures();

    default boolean hasFeature(int bit) {
        return VirtioFeatures.has(negotiatedFeatures(), bit);
    }

    /** Guest memory at activation time. A transport may replace it later; queues follow. */
    GuestMemory memory();

    /** Number of queues the transport set up. */
    int queueCount();

    /** Queue {@code index}, or null when the driver did not enable it. */
    Virtqueue queue(int index);

    /** The interrupt for used buffers on queue {@code index}. */
    Interrupt interrupt(int index);

    /** Tells the driver the configuration space changed (VIRTIO 1.3, 2.5.1). */
    void notifyConfigChange();

    /**
     * The device cannot continue until reset (e.g. a broken ring): the transport sets
     * DEVICE_NEEDS_RESET and raises a configuration change (VIRTIO 1.3, 2.1.2).
     */
    void needsReset(String reason);
}
