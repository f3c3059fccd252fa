package org.jvirtio.net;

import java.lang.foreign.MemorySegment;

import org.jvirtio.api.DescriptorChain;

/**
 * TCP segmentation in software, for a port whose driver did not negotiate the GSO type a frame
 * was sent with: the frame (Ethernet, an optional VLAN tag, IPv4 or IPv6 without extension
 * headers, TCP) is cut into segments of gso_size payload bytes, each with its own copy of the
 * headers (IPv4 total length, id and header checksum; IPv6 payload length; TCP sequence number,
 * FIN and PSH on the last segment only, CWR on the first only) and a complete TCP checksum, as
 * Linux's GSO does. The headers are read once from the sender's memory into here; a header that
 * does not parse as the GSO type says means the frame is dropped.
 *
 * <p>One per receive queue (its thread's), reused: nothing is allocated per frame.
 */
final class Segmenter {
    /** The largest headers taken: Ethernet with a VLAN tag, IPv4 with options, TCP with options. */
    static final int MAX_HEADERS = 18 + 60 + 60;

    private final byte[] h = new byte[MAX_HEADERS];
    private final MemorySegment hs = MemorySegment.ofArray(h);
    /** The original headers, kept while segments are made from {@link #h}. */
    private final byte[] orig = new byte[MAX_HEADERS];
    private int l3;
    private int l4;
    private int headers;
    private boolean v4;
    private int payload;
    private int mss;

    /**
     * Reads and checks the headers of {@code f} for segmentation.
     *
     * @return null when it can be segmented, or why not
     */
    String parse(Frame f) {
        mss = f.hdr.gsoSize;
        int n = Math.min(MAX_HEADERS, f.length);
        Copier.read(f.chain, Frame.DATA, orig, n);
        if (f.rewritten) {
            System.arraycopy(f.head, 0, orig, 0, 12); // a stage's addresses
        }
        int type = u16(orig, 12);
        l3 = 14;
        if (type == 0x8100) {
            type = u16(orig, 16);
            l3 = 18;
        }
        v4 = f.hdr.gsoKind() == VirtioNet.GSO_TCPV4;
        if (v4) {
            if (type != 0x0800 || n < l3 + 20 || (orig[l3] & 0xf0) != 0x40) {
                return "GSO TCPv4 on a frame that is not IPv4";
            }
            int ihl = (orig[l3] & 0x0f) * 4;
            if (ihl < 20 || (orig[l3 + 9] & 0xff) != 6) {
                return "GSO TCPv4 on a frame that is not TCP";
            }
            l4 = l3 + ihl;
        } else {
            if (type != 0x86dd || n < l3 + 40 || (orig[l3] & 0xf0) != 0x60 || (orig[l3 + 6] & 0xff) != 6) {
                return "GSO TCPv6 on a frame that is not IPv6 with TCP next";
            }
            l4 = l3 + 40;
        }
        if (n < l4 + 20) {
            return "GSO frame shorter than its headers";
        }
        int doff = ((orig[l4 + 12] & 0xf0) >>> 4) * 4;
        headers = l4 + doff;
        if (doff < 20 || headers > n) {
            return "GSO frame with a bad TCP header";
        }
        payload = f.length - headers;
        if (payload <= 0) {
            return "GSO frame without payload";
        }
        return null;
    }

    /** Segments the parsed frame makes. */
    int segments() {
        return (payload + mss - 1) / mss;
    }

    /** Bytes of segment {@code i}'s frame (headers and payload). */
    int segmentLength(int i) {
        return headers + Math.min(mss, payload - i * mss);
    }

    /**
     * Writes segment {@code i} (headers, then its payload from the sender's chain) into the
     * copier's destination.
     */
    void write(Frame f, int i, Copier c) {
        int len = Math.min(mss, payload - i * mss);
        boolean last = (i + 1) * mss >= payload;
        System.arraycopy(orig, 0, h, 0, headers);
        if (v4) {
            put16(h, l3 + 2, headers - l3 + len);
            put16(h, l3 + 4, u16(orig, l3 + 4) + i);
            put16(h, l3 + 10, 0);
            put16(h, l3 + 10, (int) ~sum(h, l3, l4 - l3, 0) & 0xffff);
        } else {
            put16(h, l3 + 4, headers - l4 + len);
        }
        long seq = (u32(orig, l4 + 4) + (long) i * mss) & 0xffff_ffffL;
        put32(h, l4 + 4, seq);
        int flags = orig[l4 + 13] & 0xff;
        if (!last) {
            flags &= ~0x09; // FIN, PSH: the last segment's
        }
        if (i > 0) {
            flags &= ~0x80; // CWR: the first segment's
        }
        h[l4 + 13] = (byte) flags;
        put16(h, l4 + 16, 0);
        int tcpLength = headers - l4 + len;
        long pseudo = v4 ? sum(h, l3 + 12, 8, 0) : sum(h, l3 + 8, 32, 0);
        pseudo += 6 + tcpLength;
        long s = sum(h, l4, headers - l4, pseudo);
        s += Copier.sum(f.chain, Frame.DATA + (long) headers + (long) i * mss, len);
        while ((s >>> 16) != 0) {
            s = (s & 0xffff) + (s >>> 16);
        }
        int check = ~(int) s & 0xffff;
        put16(h, l4 + 16, check);
        c.write(hs, 0, headers);
        c.source(f.chain, Frame.DATA + (long) headers + (long) i * mss);
        c.copy(len);
    }

    private static long sum(byte[] b, int from, int n, long acc) {
        for (int i = 0; i + 1 < n; i += 2) {
            acc += ((b[from + i] & 0xff) << 8) | (b[from + i + 1] & 0xff);
        }
        if ((n & 1) != 0) {
            acc += (b[from + n - 1] & 0xff) << 8;
        }
        while ((acc >>> 16) != 0) {
            acc = (acc & 0xffff) + (acc >>> 16);
        }
        return acc;
    }

    private static int u16(byte[] b, int at) {
        return ((b[at] & 0xff) << 8) | (b[at + 1] & 0xff);
    }

    private static long u32(byte[] b, int at) {
        return ((long) u16(b, at) << 16) | u16(b, at + 2);
    }

    private static void put16(byte[] b, int at, int v) {
        b[at] = (byte) (v >>> 8);
        b[at + 1] = (byte) v;
    }

    private static void put32(byte[] b, int at, long v) {
        put16(b, at, (int) (v >>> 16) & 0xffff);
        put16(b, at + 2, (int) v & 0xffff);
    }
}
