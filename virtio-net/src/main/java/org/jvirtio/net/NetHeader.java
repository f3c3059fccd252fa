package org.jvirtio.net;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One virtio_net_hdr (VIRTIO 1.3, 5.1.6), read once from the guest's buffer and kept here: the
 * offload metadata a frame travels with between ports. Mutable and reused (one per frame slot):
 * nothing is allocated per frame.
 */
public final class NetHeader {
    private static final ValueLayout.OfShort LE_U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt LE_U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LE_U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    int flags;
    int gsoType;
    int hdrLen;
    int gsoSize;
    int csumStart;
    int csumOffset;

    /**
     * Reads the first ten bytes of a header at {@code offset} of {@code s} (num_buffers is the
     * receiver's): two loads, each field taken once (a guest rewriting its buffer meanwhile
     * changes nothing here).
     */
    void read(MemorySegment s, long offset) {
        long w = s.get(LE_U64, offset);
        flags = (int) w & 0xff;
        gsoType = (int) (w >>> 8) & 0xff;
        hdrLen = (int) (w >>> 16) & 0xffff;
        gsoSize = (int) (w >>> 32) & 0xffff;
        csumStart = (int) (w >>> 48);
        csumOffset = s.get(LE_U16, offset + 8) & 0xffff;
    }

    /** Reads a header from ten bytes of {@code b}. */
    void read(byte[] b) {
        read(MemorySegment.ofArray(b), 0);
    }

    /** Writes the whole header (12 bytes) at {@code offset} of {@code s}. */
    static void write(MemorySegment s, long offset, int flags, int gsoType, int hdrLen, int gsoSize, int csumStart, int csumOffset,
            int numBuffers) {
        s.set(LE_U64, offset, low(flags, gsoType, hdrLen, gsoSize, csumStart));
        s.set(LE_U32, offset + 8, high(csumOffset, numBuffers));
    }

    /** The header's first eight bytes, as a little-endian long: flags, gso_type, hdr_len, gso_size, csum_start. */
    static long low(int flags, int gsoType, int hdrLen, int gsoSize, int csumStart) {
        return (flags & 0xffL) | (gsoType & 0xffL) << 8 | (hdrLen & 0xffffL) << 16 | (gsoSize & 0xffffL) << 32 | (csumStart & 0xffffL) << 48;
    }

    /** Its last four: csum_offset, num_buffers. */
    static int high(int csumOffset, int numBuffers) {
        return (csumOffset & 0xffff) | (numBuffers & 0xffff) << 16;
    }

    public int flags() {
        return flags;
    }

    public int gsoType() {
        return gsoType;
    }

    public int gsoSize() {
        return gsoSize;
    }

    public int csumStart() {
        return csumStart;
    }

    public int csumOffset() {
        return csumOffset;
    }

    public boolean needsCsum() {
        return (flags & VirtioNet.HDR_F_NEEDS_CSUM) != 0;
    }

    /** The GSO type without the ECN bit. */
    public int gsoKind() {
        return gsoType & ~VirtioNet.GSO_ECN;
    }

    @Override
    public String toString() {
        return "flags " + flags + " gso " + gsoType + "/" + gsoSize + " hdr_len " + hdrLen + " csum " + csumStart + "+" + csumOffset;
    }
}
