package org.jvirtio.transport.vhostuser;

/**
 * Front-end request codes (QEMU docs/interop/vhost-user.rst, "Front-end message types"), with
 * what each carries: the payload size rule and the number of file descriptors.
 */
public enum VhostUserRequest {
    GET_FEATURES(1, Payload.NONE, Fds.NONE),
    SET_FEATURES(2, Payload.U64, Fds.NONE),
    SET_OWNER(3, Payload.NONE, Fds.NONE),
    RESET_OWNER(4, Payload.NONE, Fds.NONE),
    SET_MEM_TABLE(5, Payload.MEM_TABLE, Fds.PER_REGION),
    SET_LOG_BASE(6, Payload.ANY, Fds.ANY),
    SET_LOG_FD(7, Payload.ANY, Fds.ANY),
    SET_VRING_NUM(8, Payload.VRING_STATE, Fds.NONE),
    SET_VRING_ADDR(9, Payload.VRING_ADDR, Fds.NONE),
    SET_VRING_BASE(10, Payload.VRING_STATE, Fds.NONE),
    GET_VRING_BASE(11, Payload.VRING_STATE, Fds.NONE),
    SET_VRING_KICK(12, Payload.U64, Fds.UNLESS_NOFD),
    SET_VRING_CALL(13, Payload.U64, Fds.UNLESS_NOFD),
    SET_VRING_ERR(14, Payload.U64, Fds.UNLESS_NOFD),
    GET_PROTOCOL_FEATURES(15, Payload.NONE, Fds.NONE),
    SET_PROTOCOL_FEATURES(16, Payload.U64, Fds.NONE),
    GET_QUEUE_NUM(17, Payload.NONE, Fds.NONE),
    SET_VRING_ENABLE(18, Payload.VRING_STATE, Fds.NONE),
    SEND_RARP(19, Payload.ANY, Fds.ANY),
    NET_SET_MTU(20, Payload.ANY, Fds.ANY),
    SET_BACKEND_REQ_FD(21, Payload.NONE, Fds.ONE),
    IOTLB_MSG(22, Payload.ANY, Fds.ANY),
    SET_VRING_ENDIAN(23, Payload.ANY, Fds.ANY),
    GET_CONFIG(24, Payload.CONFIG, Fds.NONE),
    SET_CONFIG(25, Payload.CONFIG, Fds.NONE),
    CREATE_CRYPTO_SESSION(26, Payload.ANY, Fds.ANY),
    CLOSE_CRYPTO_SESSION(27, Payload.ANY, Fds.ANY),
    POSTCOPY_ADVISE(28, Payload.ANY, Fds.ANY),
    POSTCOPY_LISTEN(29, Payload.ANY, Fds.ANY),
    POSTCOPY_END(30, Payload.ANY, Fds.ANY),
    GET_INFLIGHT_FD(31, Payload.ANY, Fds.ANY),
    SET_INFLIGHT_FD(32, Payload.ANY, Fds.ANY),
    GPU_SET_SOCKET(33, Payload.ANY, Fds.ANY),
    RESET_DEVICE(34, Payload.NONE, Fds.NONE),
    VRING_KICK(35, Payload.ANY, Fds.ANY),
    GET_MAX_MEM_SLOTS(36, Payload.NONE, Fds.NONE),
    ADD_MEM_REG(37, Payload.MEM_REGION, Fds.ONE),
    REM_MEM_REG(38, Payload.MEM_REGION, Fds.ZERO_OR_ONE),
    SET_STATUS(39, Payload.U64, Fds.NONE),
    GET_STATUS(40, Payload.NONE, Fds.NONE),
    GET_SHARED_OBJECT(41, Payload.ANY, Fds.ANY),
    SET_DEVICE_STATE_FD(42, Payload.ANY, Fds.ANY),
    CHECK_DEVICE_STATE(43, Payload.ANY, Fds.ANY);

    /** Payload shapes; sizes per vhost-user.rst "Message types". */
    enum Payload {
        NONE, U64, VRING_STATE, VRING_ADDR, MEM_TABLE, MEM_REGION, CONFIG,
        /** A request jvirtio does not implement: refused, whatever it carries. */
        ANY
    }

    /** How many file descriptors a request must carry. */
    enum Fds {
        NONE, ONE, ZERO_OR_ONE, PER_REGION, UNLESS_NOFD,
        /** Not implemented: any count is accepted and every fd is closed. */
        ANY
    }

    final int code;
    final Payload payload;
    final Fds fds;

    VhostUserRequest(int code, Payload payload, Fds fds) {
        this.code = code;
        this.payload = payload;
        this.fds = fds;
    }

    public int code() {
        return code;
    }

    /** Whether jvirtio implements this request (others are refused, never silently accepted). */
    public boolean supported() {
        return payload != Payload.ANY;
    }

    private static final VhostUserRequest[] BY_CODE = new VhostUserRequest[64];

    static {
        for (VhostUserRequest r : values()) {
            BY_CODE[r.code] = r;
        }
    }

    /** The request for a code, or null when the code is unknown. */
    public static VhostUserRequest of(int code) {
        return code > 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }
}
