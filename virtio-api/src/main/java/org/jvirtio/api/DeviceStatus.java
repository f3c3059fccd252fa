package org.jvirtio.api;

/**
 * The device status field (VIRTIO 1.3, 2.1) and the order in which a driver may set its bits
 * (3.1.1 "Driver Requirements: Device Initialization").
 */
public final class DeviceStatus {
    private DeviceStatus() {
    }

    public static final int ACKNOWLEDGE = 1;
    public static final int DRIVER = 2;
    public static final int DRIVER_OK = 4;
    public static final int FEATURES_OK = 8;
    public static final int DEVICE_NEEDS_RESET = 64;
    public static final int FAILED = 128;

    private static final int ALL = ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | DEVICE_NEEDS_RESET | FAILED;

    /**
     * Whether a driver may write {@code next} when the status is {@code current}.
     *
     * <p>Writing 0 is a reset and always legal. Otherwise the driver only adds bits (it never
     * clears one without a reset), never sets DEVICE_NEEDS_RESET (the device's bit) or unknown
     * bits, and follows the initialization order: ACKNOWLEDGE, then DRIVER, then FEATURES_OK,
     * then DRIVER_OK. FAILED may be set at any time.
     */
    public static boolean isLegalTransition(int current, int next) {
        if (next == 0) {
            return true;
        }
        if ((next & ~ALL) != 0 || (next & DEVICE_NEEDS_RESET & ~current) != 0) {
            return false;
        }
        if ((current & ~next & ~DEVICE_NEEDS_RESET) != 0) {
            return false; // a bit was cleared without a reset
        }
        int driverBits = next & ~(FAILED | DEVICE_NEEDS_RESET);
        if ((driverBits & DRIVER) != 0 && (driverBits & ACKNOWLEDGE) == 0) {
            return false;
        }
        if ((driverBits & FEATURES_OK) != 0 && (driverBits & DRIVER) == 0) {
            return false;
        }
        if ((driverBits & DRIVER_OK) != 0 && (driverBits & FEATURES_OK) == 0) {
            return false;
        }
        return true;
    }

    /**
     * Whether a front-end that reports the driver's progress in aggregate (vhost-user's
     * SET_STATUS) may write {@code next} when the status is {@code current}. QEMU reports
     * FEATURES_OK when it sets the features and ACKNOWLEDGE|DRIVER|DRIVER_OK when the device
     * starts, so the order of the first three bits is not checked; the rest is as in
     * {@link #isLegalTransition}: 0 resets, bits are only added, unknown bits and
     * DEVICE_NEEDS_RESET (the device's bit) are refused, and DRIVER_OK needs FEATURES_OK.
     */
    public static boolean isLegalAggregateTransition(int current, int next) {
        if (next == 0) {
            return true;
        }
        if ((next & ~ALL) != 0 || (next & DEVICE_NEEDS_RESET & ~current) != 0) {
            return false;
        }
        if ((current & ~next & ~DEVICE_NEEDS_RESET) != 0) {
            return false;
        }
        return (next & DRIVER_OK) == 0 || (next & FEATURES_OK) != 0;
    }

    /** A readable form, e.g. {@code ACKNOWLEDGE|DRIVER|FEATURES_OK}. */
    public static String describe(int status) {
        if (status == 0) {
            return "RESET";
        }
        StringBuilder sb = new StringBuilder();
        append(sb, status, ACKNOWLEDGE, "ACKNOWLEDGE");
        append(sb, status, DRIVER, "DRIVER");
        append(sb, status, FEATURES_OK, "FEATURES_OK");
        append(sb, status, DRIVER_OK, "DRIVER_OK");
        append(sb, status, DEVICE_NEEDS_RESET, "DEVICE_NEEDS_RESET");
        append(sb, status, FAILED, "FAILED");
        int unknown = status & ~ALL;
        if (unknown != 0) {
            append(sb, unknown, unknown, "0x" + Integer.toHexString(unknown));
        }
        return sb.toString();
    }

    private static void append(StringBuilder sb, int status, int bit, String name) {
        if ((status & bit) != 0) {
            if (!sb.isEmpty()) {
                sb.append('|');
            }
            sb.append(name);
        }
    }
}
