package org.jvirtio.net;

/** What a port may send: the checks of a frame's virtio-net header against its length and the port's features. */
final class FrameChecks {
    private FrameChecks() {
    }

    private static boolean has(long negotiated, int bit) {
        return (negotiated & (1L << bit)) != 0;
    }

    /**
     * Why {@code h} is not a header a port with {@code negotiated} features may send with a frame
     * of {@code length} bytes (at most {@code maxFrame} without GSO), or null.
     */
    static String check(NetHeader h, int length, long negotiated, int maxFrame) {
        int kind = h.gsoKind();
        if (h.gsoType != VirtioNet.GSO_NONE) {
            if ((h.gsoType & VirtioNet.GSO_ECN) != 0) {
                return "GSO with ECN, not negotiated";
            }
            if (kind == VirtioNet.GSO_TCPV4 ? !has(negotiated, VirtioNet.F_HOST_TSO4)
                    : kind == VirtioNet.GSO_TCPV6 ? !has(negotiated, VirtioNet.F_HOST_TSO6) : true) {
                return "GSO type " + h.gsoType + " not negotiated";
            }
            if (h.gsoSize == 0) {
                return "GSO with size 0";
            }
            if (!h.needsCsum()) {
                return "GSO without a partial checksum";
            }
        } else if (length > maxFrame) {
            return "frame of " + length + " bytes over the MTU";
        }
        if (h.needsCsum()) {
            if (!has(negotiated, VirtioNet.F_CSUM)) {
                return "partial checksum not negotiated";
            }
            if (h.csumStart < VirtioNet.ETH_HLEN || h.csumStart + h.csumOffset + 2 > length) {
                return "checksum at " + h.csumStart + "+" + h.csumOffset + " outside a frame of " + length;
            }
        }
        if (h.hdrLen > length) {
            return "header length " + h.hdrLen + " past a frame of " + length;
        }
        return null;
    }
}
