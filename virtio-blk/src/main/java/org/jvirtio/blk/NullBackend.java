package org.jvirtio.blk;

import java.lang.foreign.MemorySegment;

/** Reads zeros, discards writes: for measuring the device and transport alone. */
public final class NullBackend implements BlockBackend {
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
    public boolean readOnly() {
        return false;
    }

    @Override
    public boolean volatileCache() {
        return false;
    }

    @Override
    public boolean supportsDiscard() {
        return true;
    }

    @Override
    public boolean supportsWriteZeroes() {
        return true;
    }

    @Override
    public void read(long offset, MemorySegment dst) {
        dst.fill((byte) 0);
    }

    @Override
    public void write(long offset, MemorySegment src) {
        // discarded
    }

    @Override
    public void flush() {
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
