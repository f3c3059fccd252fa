package org.jvirtio.transport.vhostuser;

/**
 * Wire constants of vhost-user (QEMU docs/interop/vhost-user.rst). All fields little-endian.
 *
 * <pre>
 * Header (12 bytes):  +0 u32 request   +4 u32 flags   +8 u32 size (of the payload that follows)
 *   flags: bits 0-1 version (must be 0x1), bit 2 REPLY, bit 3 NEED_REPLY
 *
 * Payloads:
 *   u64                    8 bytes
 *   vring state            +0 u32 index, +4 u32 num                                   (8 bytes)
 *   vring address          +0 u32 index, +4 u32 flags, +8 u64 desc, +16 u64 used,
 *                          +24 u64 avail, +32 u64 log                                 (40 bytes)
 *   memory table           +0 u32 nregions, +4 u32 padding, then nregions x region     (8 + 32n)
 *   memory region          +0 u64 guest addr, +8 u64 size, +16 u64 user addr, +24 u64 mmap offset
 *   single memory region   +0 u64 padding, +8 region                                  (40 bytes)
 *   device config          +0 u32 offset, +4 u32 size, +8 u32 flags, +12 payload[size]
 *   vring fd (KICK/CALL/ERR) u64: bits 0-7 index, bit 8 NOFD (no fd: poll / no interrupt)
 * </pre>
 */
public final class VhostUserProtocol {
    private VhostUserProtocol() {
    }

    public static final int HEADER_SIZE = 12;
    public static final int VERSION = 0x1;
    public static final int VERSION_MASK = 0x3;
    public static final int FLAG_REPLY = 0x4;
    public static final int FLAG_NEED_REPLY = 0x8;
    /** Largest payload jvirtio reads; anything larger is malformed (the largest message is 268 bytes). */
    public static final int MAX_PAYLOAD = 4096;

    public static final int VRING_STATE_SIZE = 8;
    public static final int VRING_ADDR_SIZE = 40;
    public static final int MEM_REGION_SIZE = 32;
    public static final int SINGLE_MEM_REGION_SIZE = 8 + MEM_REGION_SIZE;
    public static final int CONFIG_HEADER_SIZE = 12;
    public static final int MAX_CONFIG_SIZE = 256;
    /**
     * The inflight description (mmap size, mmap offset: u64; num queues, queue size: u16), as
     * QEMU's struct lays it out, padding included; 20 bytes without the padding are accepted.
     */
    public static final int INFLIGHT_SIZE = 24;
    /** Regions in one SET_MEM_TABLE (VHOST_MEMORY_BASELINE_NREGIONS). */
    public static final int MAX_TABLE_REGIONS = 8;
    /** Memory slots offered by GET_MAX_MEM_SLOTS (as libvhost-user). */
    public static final int MAX_MEM_SLOTS = 509;

    public static final long VRING_INDEX_MASK = 0xff;
    public static final long VRING_NOFD_MASK = 1L << 8;
    public static final int VRING_F_LOG = 1;
    /** VHOST_F_LOG_ALL (virtio feature word, bit 26): log every write to guest memory (migration). */
    public static final long F_LOG_ALL = 1L << 26;
    /** The dirty log's description in SET_LOG_BASE: mmap size and offset, u64 each. */
    public static final int LOG_SIZE = 16;

    // ---- protocol feature bits ----
    public static final int PROTOCOL_F_MQ = 0;
    public static final int PROTOCOL_F_LOG_SHMFD = 1;
    public static final int PROTOCOL_F_RARP = 2;
    public static final int PROTOCOL_F_REPLY_ACK = 3;
    public static final int PROTOCOL_F_MTU = 4;
    public static final int PROTOCOL_F_BACKEND_REQ = 5;
    public static final int PROTOCOL_F_CROSS_ENDIAN = 6;
    public static final int PROTOCOL_F_CRYPTO_SESSION = 7;
    public static final int PROTOCOL_F_PAGEFAULT = 8;
    public static final int PROTOCOL_F_CONFIG = 9;
    public static final int PROTOCOL_F_BACKEND_SEND_FD = 10;
    public static final int PROTOCOL_F_HOST_NOTIFIER = 11;
    public static final int PROTOCOL_F_INFLIGHT_SHMFD = 12;
    public static final int PROTOCOL_F_RESET_DEVICE = 13;
    public static final int PROTOCOL_F_INBAND_NOTIFICATIONS = 14;
    public static final int PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15;
    public static final int PROTOCOL_F_STATUS = 16;

    /** Every protocol feature the jvirtio backend implements (offered as far as the device has what they need). */
    private static final String[] PROTOCOL_FEATURE_NAMES = {"MQ", "LOG_SHMFD", "RARP", "REPLY_ACK", "MTU", "BACKEND_REQ",
        "CROSS_ENDIAN", "CRYPTO_SESSION", "PAGEFAULT", "CONFIG", "BACKEND_SEND_FD", "HOST_NOTIFIER", "INFLIGHT_SHMFD",
        "RESET_DEVICE", "INBAND_NOTIFICATIONS", "CONFIGURE_MEM_SLOTS", "STATUS", "XEN_MMAP", "SHARED_OBJECT", "DEVICE_STATE"};

    /** The spec's name of protocol feature {@code bit} (PROTOCOL_F_CONFIG for 9). */
    public static String protocolFeatureName(int bit) {
        return "PROTOCOL_F_" + (bit >= 0 && bit < PROTOCOL_FEATURE_NAMES.length ? PROTOCOL_FEATURE_NAMES[bit] : bit);
    }

    public static final long BACKEND_PROTOCOL_FEATURES = (1L << PROTOCOL_F_MQ) | (1L << PROTOCOL_F_REPLY_ACK)
            | (1L << PROTOCOL_F_CONFIG) | (1L << PROTOCOL_F_BACKEND_REQ) | (1L << PROTOCOL_F_RESET_DEVICE)
            | (1L << PROTOCOL_F_CONFIGURE_MEM_SLOTS) | (1L << PROTOCOL_F_STATUS) | (1L << PROTOCOL_F_INFLIGHT_SHMFD);

    /**
     * The protocol features offered for {@code device}: {@link #BACKEND_PROTOCOL_FEATURES} less
     * CONFIG when the device has no configuration space (QEMU's vhost-user-rng warns about it)
     * and less MQ when it has one queue.
     */
    public static long protocolFeaturesFor(org.jvirtio.api.VirtioDevice device) {
        long f = BACKEND_PROTOCOL_FEATURES;
        if (device.configSize() == 0) {
            f &= ~(1L << PROTOCOL_F_CONFIG);
        }
        if (device.queueCount() <= 1) {
            f &= ~(1L << PROTOCOL_F_MQ);
        }
        if (device.announces()) {
            f |= 1L << PROTOCOL_F_RARP;
        }
        return f;
    }

    /** VHOST_USER_F_PROTOCOL_FEATURES in the virtio feature word. */
    public static final long F_PROTOCOL_FEATURES = 1L << 30;

    // ---- backend request codes (backend to front-end) ----
    public static final int BACKEND_IOTLB_MSG = 1;
    public static final int BACKEND_CONFIG_CHANGE_MSG = 2;
}
