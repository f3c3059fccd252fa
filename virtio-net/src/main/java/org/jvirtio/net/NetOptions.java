package org.jvirtio.net;

/**
 * How one port's device is set up.
 *
 * @param mac       the MAC address offered in the configuration space (48 bits)
 * @param mtu       the MTU offered (VIRTIO_NET_F_MTU), 68 to 65535
 * @param pairs     queue pairs, 1 to {@link SwitchPort#MAX_PAIRS} (MQ offered above 1)
 * @param offloads  whether checksum and TCP segmentation offloads are offered (CSUM, GUEST_CSUM,
 *                  HOST_TSO4/6, GUEST_TSO4/6)
 * @param mergeable whether merged receive buffers are offered (MRG_RXBUF)
 */
public record NetOptions(long mac, int mtu, int pairs, boolean offloads, boolean mergeable) {
    public NetOptions {
        if ((mac & ~0xffff_ffff_ffffL) != 0 || (mac & 0x0100_0000_0000L) != 0 || mac == 0) {
            throw new IllegalArgumentException("MAC " + Long.toHexString(mac) + " is not a unicast address");
        }
        if (mtu < 68 || mtu > 65535) {
            throw new IllegalArgumentException("MTU must be in [68, 65535], got " + mtu);
        }
        if (pairs < 1 || pairs > SwitchPort.MAX_PAIRS) {
            throw new IllegalArgumentException("queue pairs must be in [1, " + SwitchPort.MAX_PAIRS + "], got " + pairs);
        }
    }

    /** 1500 bytes, one pair, offloads and merged buffers on. */
    public static NetOptions defaults(long mac) {
        return new NetOptions(mac, 1500, 1, true, true);
    }

    /** {@code 52:54:00:12:34:56} as a number. */
    public static long parseMac(String s) {
        String[] parts = s.split(":", -1);
        if (parts.length != 6) {
            throw new IllegalArgumentException("a MAC address is six hex bytes with colons, not " + s);
        }
        long m = 0;
        for (String p : parts) {
            if (p.length() < 1 || p.length() > 2) {
                throw new IllegalArgumentException("a MAC address is six hex bytes with colons, not " + s);
            }
            try {
                m = (m << 8) | Integer.parseInt(p, 16);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("a MAC address is six hex bytes with colons, not " + s);
            }
        }
        return m;
    }

    public static String formatMac(long mac) {
        StringBuilder b = new StringBuilder(17);
        for (int i = 5; i >= 0; i--) {
            b.append(String.format("%02x", (mac >>> (8 * i)) & 0xff));
            if (i > 0) {
                b.append(':');
            }
        }
        return b.toString();
    }
}
