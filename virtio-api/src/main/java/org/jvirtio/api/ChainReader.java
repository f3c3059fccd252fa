package org.jvirtio.api;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Reads little-endian fields and bytes from a chain's device-readable buffers. */
public final class ChainReader extends ChainCursor {
    ChainReader(DescriptorChain chain) {
        super(chain);
    }

    @Override
    int firstBuffer() {
        return 0;
    }

    @Override
    int endBuffer() {
        return chain.readableBufferCount();
    }

    @Override
    long total() {
        return chain.readableLength();
    }

    public int readU8() {
        long off = contiguous(1);
        if (off >= 0) {
            int v = chain.segmentAt(buffer).get(ValueLayout.JAVA_BYTE, off) & 0xff;
            advanceWithin(1);
            return v;
        }
        return (int) slow(1);
    }

    public int readU16() {
        long off = contiguous(2);
        if (off >= 0) {
            int v = chain.segmentAt(buffer).get(GuestMemory.LE_U16, off) & 0xffff;
            advanceWithin(2);
            return v;
        }
        return (int) slow(2);
    }

    public long readU32() {
        long off = contiguous(4);
        if (off >= 0) {
            long v = chain.segmentAt(buffer).get(GuestMemory.LE_U32, off) & 0xffff_ffffL;
            advanceWithin(4);
            return v;
        }
        return slow(4);
    }

    public long readU64() {
        long off = contiguous(8);
        if (off >= 0) {
            long v = chain.segmentAt(buffer).get(GuestMemory.LE_U64, off);
            advanceWithin(8);
            return v;
        }
        return slow(8);
    }

    /** A field that straddles buffers: byte by byte, little-endian. */
    private long slow(int n) {
        if (remaining() < n) {
            throw new ChainUnderflowException("read of u" + (n * 8), n, remaining());
        }
        long v = 0;
        for (int i = 0; i < n; i++) {
            long off = chain.offsetAt(buffer) + inBuffer;
            v |= (long) (chain.segmentAt(buffer).get(ValueLayout.JAVA_BYTE, off) & 0xff) << (8 * i);
            advanceWithin(1);
        }
        return v;
    }

    /** Fills {@code dst} from the chain. */
    public void read(MemorySegment dst) {
        transfer(dst, false);
    }

    /** Reads {@code n} bytes into a new array (control paths and tests). */
    public byte[] readBytes(int n) {
        // Checked before allocating: a guest-chosen length must not size an array it cannot fill.
        if (n < 0 || n > remaining()) {
            throw new ChainUnderflowException("read of " + n + " bytes", n, remaining());
        }
        byte[] out = new byte[n];
        read(MemorySegment.ofArray(out));
        return out;
    }
}
