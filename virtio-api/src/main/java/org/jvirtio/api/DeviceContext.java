package org.jvirtio.api;

/**
 * What a transport gives a device when a driver session starts (after feature negotiation,
 * before any queue starts): the negotiated features and the way back to the driver for
 * device-wide events.
 */
public interface DeviceContext {
    /** The features both sides agreed on. */
    long negotiatedFeatures();

    default boolean hasFeature(int bit) {
        return VirtioFeatures.has(negotiatedFeatures(), bit);
    }

    /** Tells the driver the configuration space changed (VIRTIO 1.3, 2.5.1). */
    void notifyConfigChange();

    /**
     * The device cannot continue until reset (a broken ring, say): the transport sets
     * DEVICE_NEEDS_RESET and tells the driver in the transport's way (VIRTIO 1.3, 2.1.2;
     * vhost-user: the queue's error eventfd).
     *
     * @param queue the queue concerned, or -1 for the whole device
     */
    void needsReset(int queue, String reason);
}
