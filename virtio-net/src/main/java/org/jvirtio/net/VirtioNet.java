package org.jvirtio.net;

/** virtio-net's numbers (VIRTIO 1.3, 5.1): device id, feature bits, header and configuration layout. */
public final class VirtioNet {
    /** Device ID of the network device. */
    public static final int DEVICE_ID = 1;

    // ---- feature bits (5.1.3) ----
    /** The device handles packets with partial checksum (the driver may send NEEDS_CSUM). */
    public static final int F_CSUM = 0;
    /** The driver handles packets with partial checksum (the device may deliver NEEDS_CSUM). */
    public static final int F_GUEST_CSUM = 1;
    /** The configuration space has the MTU. */
    public static final int F_MTU = 3;
    /** The configuration space has the MAC address. */
    public static final int F_MAC = 5;
    public static final int F_GUEST_TSO4 = 7;
    public static final int F_GUEST_TSO6 = 8;
    public static final int F_GUEST_ECN = 9;
    public static final int F_GUEST_UFO = 10;
    public static final int F_HOST_TSO4 = 11;
    public static final int F_HOST_TSO6 = 12;
    public static final int F_HOST_ECN = 13;
    public static final int F_HOST_UFO = 14;
    /** The driver can merge receive buffers: one frame may span several chains. */
    public static final int F_MRG_RXBUF = 15;
    /** The configuration space has the link status. */
    public static final int F_STATUS = 16;
    public static final int F_CTRL_VQ = 17;
    /** The driver can send gratuitous packets (after a migration, when the device asks). */
    public static final int F_GUEST_ANNOUNCE = 21;
    /** Several queue pairs. */
    public static final int F_MQ = 22;

    // ---- the header (5.1.6): 12 bytes with VERSION_1 ----
    public static final int HDR_SIZE = 12;
    public static final int HDR_F_NEEDS_CSUM = 1;
    public static final int HDR_F_DATA_VALID = 2;
    public static final int GSO_NONE = 0;
    public static final int GSO_TCPV4 = 1;
    public static final int GSO_UDP = 3;
    public static final int GSO_TCPV6 = 4;
    public static final int GSO_ECN = 0x80;

    // ---- configuration space (5.1.4) ----
    public static final int CONFIG_MAC = 0;
    public static final int CONFIG_STATUS = 6;
    public static final int CONFIG_MAX_PAIRS = 8;
    public static final int CONFIG_MTU = 10;
    public static final int CONFIG_SIZE = 12;
    public static final int S_LINK_UP = 1;
    public static final int S_ANNOUNCE = 2;

    /** An Ethernet header: destination, source, type. */
    public static final int ETH_HLEN = 14;
    /** The largest frame a driver may send with a GSO type, header not counted (what Linux's tap accepts). */
    public static final int MAX_GSO_FRAME = 65535 + ETH_HLEN + 4;

    private VirtioNet() {
    }
}
