package org.jvirtio.testkit;

import java.io.UncheckedIOException;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.linux.ErrnoException;

/** Guest memory for tests: a memfd (so vhost-user can share it), mapped as one region at guest address 0. */
public final class TestMemory {
    private TestMemory() {
    }

    /**
     * {@code size} bytes of zeroed guest memory at guest address 0, backed by a sealable memfd.
     * The caller owns the one reference: {@link GuestMemory#release()} it when done.
     */
    public static GuestMemory memfd(long size) {
        MemoryMapping m;
        try {
            m = MemoryMapping.memfd("guest", size);
        } catch (ErrnoException e) {
            throw new UncheckedIOException(new java.io.IOException("memfd of " + size + " bytes: " + e.getMessage(), e));
        }
        try {
            return GuestMemory.of(GuestRegion.of(0, m));
        } finally {
            m.release(); // the memory holds its own reference
        }
    }
}
