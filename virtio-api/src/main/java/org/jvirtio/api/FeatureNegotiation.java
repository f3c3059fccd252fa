package org.jvirtio.api;

/**
 * Feature negotiation (VIRTIO 1.3, 2.2 and 3.1.1): the driver accepts a subset of what the
 * device offers, and a modern device requires VERSION_1.
 *
 * <p>A bit the driver acknowledges without its having been offered is refused, with the bit named
 * ({@link VirtioFeatures#describe}), except where a transport tolerates it: vhost-user tolerates
 * {@link #VHOST_USER_TOLERATED} (see {@link #negotiate(long, long, boolean, long)}).
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

    /**
     * Bits a vhost-user front-end may acknowledge without the backend having offered them, which
     * are dropped (the device never sees them negotiated) with a warning instead of refusing the
     * driver: VIRTIO_F_RING_RESET, which QEMU 7.2's vhost-user-input-pci passes on from its own
     * PCI transport although no vhost-user message could ever reset a ring (as libvhost-user, which
     * takes any bit). Every other bit not offered is refused.
     */
    public static final long VHOST_USER_TOLERATED = VirtioFeatures.bit(VirtioFeatures.RING_RESET);

    /**
     * Outcome: the negotiated set, or the refusal with the offending bits.
     *
     * @param ignoredBits tolerated bits the driver acknowledged without an offer, dropped from {@code features}
     */
    public record Result(long features, Refusal refusal, long offendingBits, long ignoredBits) {
        public boolean accepted() {
            return refusal == null;
        }

        public String message() {
            if (accepted()) {
                return "accepted features 0x" + Long.toHexString(features);
            }
            return switch (refusal) {
                case NOT_OFFERED -> "driver acknowledged features the device does not offer: " + VirtioFeatures.describe(offendingBits)
                        + remedy(offendingBits);
                case VERSION_1_MISSING -> "driver did not accept VIRTIO_F_VERSION_1 (bit 32); legacy drivers are not supported";
            };
        }

        private static String remedy(long bits) {
            return VirtioFeatures.has(bits, VirtioFeatures.RING_RESET)
                    ? " (QEMU 7.2 adds VIRTIO_F_RING_RESET of its own; add queue_reset=off to the -device options)" : "";
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
     * What a transport that speaks both ring layouts offers: {@link #offered} and
     * VIRTIO_F_RING_PACKED where the device allows it ({@link VirtioDevice#allowsPackedRings}).
     */
    public static long offeredWithPacked(VirtioDevice device) {
        return offered(device) | (device.allowsPackedRings() ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0);
    }

    /**
     * What vhost-user offers: {@link #offeredWithPacked} and the features whose control queue the
     * front-end serves ({@link VirtioDevice#frontEndControlQueueFeatures}).
     */
    public static long offeredOverVhostUser(VirtioDevice device) {
        return offeredWithPacked(device) | device.frontEndControlQueueFeatures();
    }

    /**
     * Checks a driver's acknowledged features against the device's offer.
     *
     * @param requireVersion1 whether VERSION_1 must be among the accepted features (true for
     *                        virtio-pci/mmio modern; vhost-user frontends negotiate it the same
     *                        way but may be asked separately)
     */
    public static Result negotiate(long offered, long acknowledged, boolean requireVersion1) {
        return negotiate(offered, acknowledged, requireVersion1, 0);
    }

    /**
     * As {@link #negotiate(long, long, boolean)}, dropping instead of refusing the bits of
     * {@code tolerated} the driver acknowledged without an offer (reported in
     * {@link Result#ignoredBits()}).
     */
    public static Result negotiate(long offered, long acknowledged, boolean requireVersion1, long tolerated) {
        long extra = acknowledged & ~offered;
        long ignored = extra & tolerated;
        extra &= ~tolerated;
        if (extra != 0) {
            return new Result(0, Refusal.NOT_OFFERED, extra, 0);
        }
        if (requireVersion1 && !VirtioFeatures.has(acknowledged, VirtioFeatures.VERSION_1)) {
            return new Result(0, Refusal.VERSION_1_MISSING, VirtioFeatures.bit(VirtioFeatures.VERSION_1), 0);
        }
        return new Result(acknowledged & ~ignored, null, 0, ignored);
    }
}
