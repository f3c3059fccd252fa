package org.jvirtio.blk;

import java.lang.foreign.MemorySegment;

/** Reads zeros, discards writes: for measuring the device and transport alone. */
public final class NullBackend implements BlockBackend {
    private static final MemorySegment ZEROS = java.lang.foreign.Arena.global().allocate(64 << 10, 4096);
    private final long size;

    public NullBackend(long size) {
        if (size <= 0 || size % 512 != 0) {
            throw new IllegalArgumentException("size must be a positive multiple of 512: " + size);
        }
        this.size = size;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void read(long offset, MemorySegment mem, long memOffset, long length) {
        for (long done = 0; done < length; done += ZEROS.byteSize()) {
            MemorySegment.copy(ZEROS, 0, mem, memOffset + done, Math.min(ZEROS.byteSize(), length - done));
        }
    }

    @Override
    public void write(long offset, MemorySegment mem, long memOffset, long length) {
        // discarded
    }

    @Override
    public void discard(long offset, long length) {
    }

    @Override
    public void writeZeroes(long offset, long length, boolean unmap) {
    }

    @Override
    public String describe() {
        return "null disk of " + size + " bytes";
    }

    @Override
    public void close() {
    }
}
