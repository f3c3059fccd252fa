package org.jvirtio.api;

/**
 * Feature negotiation (VIRTIO 1.3, 2.2 and 3.1.1): the driver accepts a subset of what the
 * device offers, and a modern device requires VERSION_1.
 */
public final class FeatureNegotiation {
    private FeatureNegotiation() {
    }

    /** Why a driver's feature set was refused. */
    public enum Refusal {
        /** The driver acknowledged bits the device never offered. */
        NOT_OFFERED,
        /** VERSION_1 was not accepted; jvirtio devices are modern only. */
        VERSION_1_MISSING
    }

    /** Outcome: the negotiated set, or the refusal with the offending bits. */
    public record Result(long features, Refusal refusal, long offendingBits) {
        public boolean accepted() {
            return refusal == null;
        }

        public String message() {
            if (accepted()) {
                return "accepted features 0x" + Long.toHexString(features);
            }
            return switch (refusal) {
                case NOT_OFFERED -> "driver acknowledged features the device does not offer: 0x" + Long.toHexString(offendingBits);
                case VERSION_1_MISSING -> "driver did not accept VIRTIO_F_VERSION_1 (bit 32); legacy drivers are not supported";
            };
        }
    }

    /**
     * Everything a transport offers for {@code device}: its device-type features plus the ring
     * features every jvirtio queue supports (VERSION_1, INDIRECT_DESC, EVENT_IDX). Transports
     * call this; devices do not add ring features themselves.
     */
    public static long offered(VirtioDevice device) {
        return device.deviceFeatures() | VirtioFeatures.RING_FEATURES;
    }

    /**
     * Checks a driver's acknowledged features against the device's offer.
     *
     * @param requireVersion1 whether VERSION_1 must be among the accepted features (true for
     *                        virtio-pci/mmio modern; vhost-user frontends negotiate it the same
     *                        way but may be asked separately)
     */
    public static Result negotiate(long offered, long acknowledged, boolean requireVersion1) {
        long extra = acknowledged & ~offered;
        if (extra != 0) {
            return new Result(0, Refusal.NOT_OFFERED, extra);
        }
        if (requireVersion1 && !VirtioFeatures.has(acknowledged, VirtioFeatures.VERSION_1)) {
            return new Result(0, Refusal.VERSION_1_MISSING, VirtioFeatures.bit(VirtioFeatures.VERSION_1));
        }
        return new Result(acknowledged, null, 0);
    }
}
