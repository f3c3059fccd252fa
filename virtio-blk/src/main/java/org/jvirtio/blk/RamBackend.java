package org.jvirtio.blk;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** A disk in this process's memory (zeroed at start, gone at exit). */
public final class RamBackend implements BlockBackend {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment data;

    public RamBackend(long size) {
        if (size <= 0 || size % 512 != 0) {
            throw new IllegalArgumentException("size must be a positive multiple of 512: " + size);
        }
        this.data = arena.allocate(size, 4096);
    }

    @Override
    public long size() {
        return data.byteSize();
    }

    @Override
    public void read(long offset, MemorySegment mem, long memOffset, long length) {
        MemorySegment.copy(data, offset, mem, memOffset, length);
    }

    @Override
    public void write(long offset, MemorySegment mem, long memOffset, long length) {
        MemorySegment.copy(mem, memOffset, data, offset, length);
    }

    @Override
    public void discard(long offset, long length) {
        data.asSlice(offset, length).fill((byte) 0);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean unmap) {
        data.asSlice(offset, length).fill((byte) 0);
    }

    @Override
    public String describe() {
        return "RAM disk of " + data.byteSize() + " bytes";
    }

    @Override
    public void close() {
        arena.close();
    }
}
