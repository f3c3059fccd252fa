package org.jvirtio.api;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Writes little-endian fields and bytes into a chain's device-writable buffers. */
public final class ChainWriter extends ChainCursor {
    ChainWriter(DescriptorChain chain) {
        super(chain);
    }

    @Override
    int firstBuffer() {
        return chain.readableBufferCount();
    }

    @Override
    int endBuffer() {
        return chain.bufferCount();
    }

    @Override
    long total() {
        return chain.writableLength();
    }

    public void writeU8(int value) {
        long off = contiguous(1);
        if (off >= 0) {
            chain.segmentAt(buffer).set(ValueLayout.JAVA_BYTE, off, (byte) value);
            advanceWithin(1);
        } else {
            slow(value, 1);
        }
    }

    public void writeU16(int value) {
        long off = contiguous(2);
        if (off >= 0) {
            chain.segmentAt(buffer).set(GuestMemory.LE_U16, off, (short) value);
            advanceWithin(2);
        } else {
            slow(value, 2);
        }
    }

    public void writeU32(long value) {
        long off = contiguous(4);
        if (off >= 0) {
            chain.segmentAt(buffer).set(GuestMemory.LE_U32, off, (int) value);
            advanceWithin(4);
        } else {
            slow(value, 4);
        }
    }

    public void writeU64(long value) {
        long off = contiguous(8);
        if (off >= 0) {
            chain.segmentAt(buffer).set(GuestMemory.LE_U64, off, value);
            advanceWithin(8);
        } else {
            slow(value, 8);
        }
    }

    private void slow(long value, int n) {
        if (remaining() < n) {
            throw new ChainUnderflowException("write of u" + (n * 8), n, remaining());
        }
        for (int i = 0; i < n; i++) {
            long off = chain.offsetAt(buffer) + inBuffer;
            chain.segmentAt(buffer).set(ValueLayout.JAVA_BYTE, off, (byte) (value >>> (8 * i)));
            advanceWithin(1);
        }
    }

    /** Copies all of {@code src} into the chain. */
    public void write(MemorySegment src) {
        transfer(src, true);
    }

    public void write(byte[] src) {
        write(MemorySegment.ofArray(src));
    }
}
