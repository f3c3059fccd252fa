package org.jvirtio.net;

import java.util.Arrays;

/**
 * A port may send only from its own MAC address and, for IPv4 and ARP, from the addresses it was
 * given: what OpenStack's port security and libvirt's clean-traffic filter do, so a guest cannot
 * take over another's traffic. Frames from another source are dropped (counted on the port).
 */
public final class AntiSpoofing implements FrameStage {
    private final long mac;
    private final int[] ipv4;

    /**
     * @param mac  the one source MAC address allowed
     * @param ipv4 the IPv4 source addresses allowed (in IPv4 and ARP frames); none: IPv4 and ARP are not checked
     */
    public AntiSpoofing(long mac, int... ipv4) {
        this.mac = mac;
        this.ipv4 = ipv4.clone();
        Arrays.sort(this.ipv4);
    }

    @Override
    public boolean accept(SwitchFrame f) {
        if (f.source() != mac) {
            return false;
        }
        if (ipv4.length == 0) {
            return true;
        }
        int l3 = f.byteAt(12) == 0x81 && f.byteAt(13) == 0x00 ? 18 : 14;
        int at = switch (f.etherType()) {
            case 0x0800 -> l3 + 12; // IPv4 source
            case 0x0806 -> l3 + 14; // ARP sender protocol address
            default -> -1;
        };
        if (at < 0) {
            return true;
        }
        int a = f.byteAt(at);
        int b = f.byteAt(at + 1);
        int c = f.byteAt(at + 2);
        int d = f.byteAt(at + 3);
        if ((a | b | c | d) < 0) {
            return false; // too short to say
        }
        int ip = (a << 24) | (b << 16) | (c << 8) | d;
        return ip == 0 || Arrays.binarySearch(ipv4, ip) >= 0; // 0.0.0.0: DHCP before an address
    }

    /** {@code 10.0.0.1} as a number. */
    public static int parseIpv4(String s) {
        String[] p = s.split("\\.", -1);
        if (p.length != 4) {
            throw new IllegalArgumentException("not an IPv4 address: " + s);
        }
        int ip = 0;
        for (String x : p) {
            int v;
            try {
                v = Integer.parseInt(x);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("not an IPv4 address: " + s);
            }
            if (v < 0 || v > 255 || x.isEmpty()) {
                throw new IllegalArgumentException("not an IPv4 address: " + s);
            }
            ip = (ip << 8) | v;
        }
        return ip;
    }
}
