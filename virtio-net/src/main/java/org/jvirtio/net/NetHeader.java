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

    int flags;
    int gsoType;
    int hdrLen;
    int gsoSize;
    int csumStart;
    int csumOffset;

    /** Reads the first ten bytes of a header at {@code offset} of {@code s} (num_buffers is the receiver's). */
    void read(MemorySegment s, long offset) {
        flags = s.get(ValueLayout.JAVA_BYTE, offset) & 0xff;
        gsoType = s.get(ValueLayout.JAVA_BYTE, offset + 1) & 0xff;
        hdrLen = s.get(LE_U16, offset + 2) & 0xffff;
        gsoSize = s.get(LE_U16, offset + 4) & 0xffff;
        csumStart = s.get(LE_U16, offset + 6) & 0xffff;
        csumOffset = s.get(LE_U16, offset + 8) & 0xffff;
    }

    /** Reads a header from ten bytes of {@code b}. */
    void read(byte[] b) {
        read(MemorySegment.ofArray(b), 0);
    }

    /** Writes the whole header (12 bytes) at {@code offset} of {@code s}. */
    static void write(MemorySegment s, long offset, int flags, int gsoType, int hdrLen, int gsoSize, int csumStart, int csumOffset,
            int numBuffers) {
        s.set(ValueLayout.JAVA_BYTE, offset, (byte) flags);
        s.set(ValueLayout.JAVA_BYTE, offset + 1, (byte) gsoType);
        s.set(LE_U16, offset + 2, (short) hdrLen);
        s.set(LE_U16, offset + 4, (short) gsoSize);
        s.set(LE_U16, offset + 6, (short) csumStart);
        s.set(LE_U16, offset + 8, (short) csumOffset);
        s.set(LE_U16, offset + 10, (short) numBuffers);
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
