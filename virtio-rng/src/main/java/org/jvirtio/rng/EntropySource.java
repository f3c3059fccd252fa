package org.jvirtio.rng;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * Where virtio-rng's bytes come from. The bytes are written straight into guest memory:
 * {@code region} is a whole mapped guest memory region and {@code [offset, offset + length)} a
 * range inside it that the ring already checked. Called on the queue's thread.
 */
public interface EntropySource extends AutoCloseable {
    /**
     * Writes up to {@code length} random bytes at {@code offset} of {@code region}.
     *
     * @return the bytes written: {@code length}, or fewer when the source has no more (the end of
     *         a file); 0 only then
     */
    int fill(MemorySegment region, long offset, int length) throws IOException;

    @Override
    default void close() throws IOException {
    }

    /** The kernel's CSPRNG through getrandom(2) (the default; never blocks once the pool is initialised). */
    static EntropySource getrandom() {
        return NativeSources.GETRANDOM;
    }

    /** Bytes read from a file, such as /dev/urandom or /dev/hwrng, with read(2). */
    static EntropySource file(Path path) throws IOException {
        return NativeSources.file(path);
    }
}
