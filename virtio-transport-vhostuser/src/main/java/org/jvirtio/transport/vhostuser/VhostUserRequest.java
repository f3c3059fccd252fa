package org.jvirtio.transport.vhostuser;

/**
 * Front-end request codes (QEMU docs/interop/vhost-user.rst, "Front-end message types"). What
 * each carries, and whether jvirtio implements it, is decided in one place:
 * {@link VhostUserCodec#decode}.
 */
public enum VhostUserRequest {
    GET_FEATURES(1),
    SET_FEATURES(2),
    SET_OWNER(3),
    RESET_OWNER(4),
    SET_MEM_TABLE(5),
    SET_LOG_BASE(6),
    SET_LOG_FD(7),
    SET_VRING_NUM(8),
    SET_VRING_ADDR(9),
    SET_VRING_BASE(10),
    GET_VRING_BASE(11),
    SET_VRING_KICK(12),
    SET_VRING_CALL(13),
    SET_VRING_ERR(14),
    GET_PROTOCOL_FEATURES(15),
    SET_PROTOCOL_FEATURES(16),
    GET_QUEUE_NUM(17),
    SET_VRING_ENABLE(18),
    SEND_RARP(19),
    NET_SET_MTU(20),
    SET_BACKEND_REQ_FD(21),
    IOTLB_MSG(22),
    SET_VRING_ENDIAN(23),
    GET_CONFIG(24),
    SET_CONFIG(25),
    CREATE_CRYPTO_SESSION(26),
    CLOSE_CRYPTO_SESSION(27),
    POSTCOPY_ADVISE(28),
    POSTCOPY_LISTEN(29),
    POSTCOPY_END(30),
    GET_INFLIGHT_FD(31),
    SET_INFLIGHT_FD(32),
    GPU_SET_SOCKET(33),
    RESET_DEVICE(34),
    VRING_KICK(35),
    GET_MAX_MEM_SLOTS(36),
    ADD_MEM_REG(37),
    REM_MEM_REG(38),
    SET_STATUS(39),
    GET_STATUS(40),
    GET_SHARED_OBJECT(41),
    SET_DEVICE_STATE_FD(42),
    CHECK_DEVICE_STATE(43);

    final int code;

    VhostUserRequest(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    private static final VhostUserRequest[] BY_CODE = new VhostUserRequest[64];

    static {
        for (VhostUserRequest r : values()) {
            BY_CODE[r.code] = r;
        }
    }

    /**
     * The protocol feature vhost-user.rst gates this request on (a front-end that sends it without
     * having negotiated the feature is refused), or -1.
     */
    int gatingProtocolFeature() {
        return switch (this) {
            case GET_CONFIG, SET_CONFIG -> VhostUserProtocol.PROTOCOL_F_CONFIG;
            case SET_BACKEND_REQ_FD -> VhostUserProtocol.PROTOCOL_F_BACKEND_REQ;
            case RESET_DEVICE -> VhostUserProtocol.PROTOCOL_F_RESET_DEVICE;
            case GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG -> VhostUserProtocol.PROTOCOL_F_CONFIGURE_MEM_SLOTS;
            case SET_STATUS, GET_STATUS -> VhostUserProtocol.PROTOCOL_F_STATUS;
            case GET_INFLIGHT_FD, SET_INFLIGHT_FD -> VhostUserProtocol.PROTOCOL_F_INFLIGHT_SHMFD;
            case SET_LOG_BASE, SET_LOG_FD -> VhostUserProtocol.PROTOCOL_F_LOG_SHMFD;
            case SEND_RARP -> VhostUserProtocol.PROTOCOL_F_RARP;
            default -> -1;
        };
    }

    /**
     * Why this request may not be sent on a connection, or null: vhost-user.rst gates some
     * requests on a protocol feature having been negotiated ({@link #gatingProtocolFeature}),
     * GET_QUEUE_NUM on MQ having been offered.
     *
     * @param offered    the protocol features the back-end offers
     * @param negotiated the protocol features the front-end set
     */
    String refusal(long offered, long negotiated) {
        if (this == GET_QUEUE_NUM && (offered & (1L << VhostUserProtocol.PROTOCOL_F_MQ)) == 0) {
            return "is only for a back-end that offers PROTOCOL_F_MQ, and this device has one queue";
        }
        int bit = gatingProtocolFeature();
        if (bit >= 0 && (negotiated & (1L << bit)) == 0) {
            return "needs protocol feature " + VhostUserProtocol.protocolFeatureName(bit) + ", which was not negotiated";
        }
        return null;
    }

    /** Whether the request is answered with a reply of its own (REPLY_ACK changes nothing for it). */
    boolean solicitsReply() {
        return switch (this) {
            case GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, GET_VRING_BASE, GET_CONFIG,
                 GET_STATUS, SET_LOG_BASE, GET_INFLIGHT_FD -> true;
            default -> false;
        };
    }

    /** The request for a code, or null when the code is unknown. */
    public static VhostUserRequest of(int code) {
        return code > 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }
}
