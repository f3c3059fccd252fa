package org.jvirtio.api;

/**
 * Device-independent feature bit numbers (VIRTIO 1.3, 6 "Reserved Feature Bits"), and
 * helpers to turn them into masks. A feature set is a {@code long} of {@code 1L << bit}.
 */
public final class VirtioFeatures {
    private VirtioFeatures() {
    }

    // ---- device-independent (VIRTIO 1.3, 6) ----
    /** Legacy: notify even when the avail ring is empty. */
    public static final int NOTIFY_ON_EMPTY = 24;
    /** Legacy: any descriptor layout (always true for VERSION_1). */
    public static final int ANY_LAYOUT = 27;
    /** VIRTIO_F_INDIRECT_DESC (2.7.5.3). */
    public static final int INDIRECT_DESC = 28;
    /** VIRTIO_F_EVENT_IDX: used_event / avail_event suppression (2.7.7, 2.7.10). */
    public static final int EVENT_IDX = 29;
    /** vhost-user: the frontend and backend speak the protocol-feature extension (bit 30). */
    public static final int VHOST_USER_F_PROTOCOL_FEATURES = 30;
    /** VIRTIO_F_VERSION_1: a modern (1.x) device. */
    public static final int VERSION_1 = 32;
    public static final int ACCESS_PLATFORM = 33;
    public static final int RING_PACKED = 34;
    public static final int IN_ORDER = 35;
    public static final int ORDER_PLATFORM = 36;
    public static final int SR_IOV = 37;
    public static final int NOTIFICATION_DATA = 38;
    public static final int NOTIF_CONFIG_DATA = 39;
    public static final int RING_RESET = 40;
    public static final int ADMIN_VQ = 41;

    /** The spec's name of a device-independent feature bit ("VIRTIO_F_RING_RESET"), or null for a device-type or unknown bit. */
    public static String name(int bit) {
        return switch (bit) {
            case NOTIFY_ON_EMPTY -> "VIRTIO_F_NOTIFY_ON_EMPTY";
            case ANY_LAYOUT -> "VIRTIO_F_ANY_LAYOUT";
            case INDIRECT_DESC -> "VIRTIO_F_INDIRECT_DESC";
            case EVENT_IDX -> "VIRTIO_F_EVENT_IDX";
            case VHOST_USER_F_PROTOCOL_FEATURES -> "VHOST_USER_F_PROTOCOL_FEATURES";
            case VERSION_1 -> "VIRTIO_F_VERSION_1";
            case ACCESS_PLATFORM -> "VIRTIO_F_ACCESS_PLATFORM";
            case RING_PACKED -> "VIRTIO_F_RING_PACKED";
            case IN_ORDER -> "VIRTIO_F_IN_ORDER";
            case ORDER_PLATFORM -> "VIRTIO_F_ORDER_PLATFORM";
            case SR_IOV -> "VIRTIO_F_SR_IOV";
            case NOTIFICATION_DATA -> "VIRTIO_F_NOTIFICATION_DATA";
            case NOTIF_CONFIG_DATA -> "VIRTIO_F_NOTIF_CONFIG_DATA";
            case RING_RESET -> "VIRTIO_F_RING_RESET";
            case ADMIN_VQ -> "VIRTIO_F_ADMIN_VQ";
            default -> null;
        };
    }

    /** The bits of {@code features}, each as "bit N (NAME)" or "bit N": "bit 40 (VIRTIO_F_RING_RESET), bit 50". */
    public static String describe(long features) {
        StringBuilder b = new StringBuilder();
        for (long f = features; f != 0; f &= f - 1) {
            int bit = Long.numberOfTrailingZeros(f);
            if (b.length() > 0) {
                b.append(", ");
            }
            String name = name(bit);
            b.append("bit ").append(bit);
            if (name != null) {
                b.append(" (").append(name).append(')');
            }
        }
        return b.toString();
    }

    /** Mask of one bit. */
    public static long bit(int feature) {
        if (feature < 0 || feature > 63) {
            throw new IllegalArgumentException("feature bit out of range: " + feature);
        }
        return 1L << feature;
    }

    /** Mask of several bits. */
    public static long mask(int... features) {
        long m = 0;
        for (int f : features) {
            m |= bit(f);
        }
        return m;
    }

    public static boolean has(long features, int feature) {
        return (features & bit(feature)) != 0;
    }

    /** Feature bits that a split-ring device in jvirtio offers regardless of its type. */
    public static final long RING_FEATURES = mask(VERSION_1, INDIRECT_DESC, EVENT_IDX);
}
