package org.jvirtio.api;

import java.lang.foreign.MemorySegment;

/**
 * A position inside either the readable or the writable buffers of a {@link DescriptorChain}.
 * Multi-byte fields may straddle buffers; the fast path is one bounds check when they do not.
 */
public abstract sealed class ChainCursor permits ChainReader, ChainWriter {
    final DescriptorChain chain;
    /** Index of the current buffer. */
    int buffer;
    /** Offset inside the current buffer. */
    long inBuffer;
    /** Bytes consumed so far. */
    long position;

    ChainCursor(DescriptorChain chain) {
        this.chain = chain;
    }

    abstract int firstBuffer();

    abstract int endBuffer();

    abstract long total();

    void rewind() {
        buffer = firstBuffer();
        inBuffer = 0;
        position = 0;
        skipEmpty();
    }

    /** Moves past zero-length and exhausted buffers. */
    final void skipEmpty() {
        int end = endBuffer();
        while (buffer < end && inBuffer >= chain.lengthAt(buffer)) {
            buffer++;
            inBuffer = 0;
        }
    }

    /** Bytes consumed so far. */
    public final long position() {
        return position;
    }

    /** Bytes left. */
    public final long remaining() {
        return total() - position;
    }

    /** Advances {@code n} bytes. */
    public final void skip(long n) {
        if (n < 0 || n > remaining()) {
            throw new ChainUnderflowException("skip", n, remaining());
        }
        long left = n;
        while (left > 0) {
            long here = Math.min(left, chain.lengthAt(buffer) - inBuffer);
            inBuffer += here;
            left -= here;
            skipEmpty();
        }
        position += n;
    }

    /**
     * Offset in the current buffer's region segment if the next {@code n} bytes lie in one
     * buffer, else -1.
     */
    final long contiguous(int n) {
        if (buffer < endBuffer() && chain.lengthAt(buffer) - inBuffer >= n) {
            return chain.offsetAt(buffer) + inBuffer;
        }
        return -1;
    }

    final void advanceWithin(int n) {
        inBuffer += n;
        position += n;
        skipEmpty();
    }

    /** Copies between the chain and {@code other} in buffer-sized steps. */
    final void transfer(MemorySegment other, boolean intoChain) {
        long len = other.byteSize();
        if (len > remaining()) {
            throw new ChainUnderflowException(intoChain ? "write" : "read", len, remaining());
        }
        long done = 0;
        while (done < len) {
            long here = Math.min(len - done, chain.lengthAt(buffer) - inBuffer);
            MemorySegment seg = chain.segmentAt(buffer);
            long off = chain.offsetAt(buffer) + inBuffer;
            if (intoChain) {
                MemorySegment.copy(other, done, seg, off, here);
            } else {
                MemorySegment.copy(seg, off, other, done, here);
            }
            inBuffer += here;
            done += here;
            skipEmpty();
        }
        position += len;
    }
}
