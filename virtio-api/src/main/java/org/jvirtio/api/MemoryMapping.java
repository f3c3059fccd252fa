package org.jvirtio.api;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;

/**
 * A shared mapping of a file descriptor (a memfd, a hugetlbfs file, a file received over a
 * vhost-user socket), reference counted and unmapped deterministically when the last user
 * {@linkplain #release() releases} it. After the unmap any access through {@link #segment()}
 * throws {@link IllegalStateException} instead of touching unmapped memory.
 *
 * <p>The mapping may own its file descriptor ({@link #ownsFd()}): then the descriptor is closed
 * with the unmap, so that memory the driver side created can also be handed to another process.
 */
public final class MemoryMapping {
    private final Arena arena;
    private final MemorySegment segment;
    private final int fd;
    private final boolean ownsFd;
    private final long fileOffset;
    private final AtomicInteger refs = new AtomicInteger(1);

    private MemoryMapping(Arena arena, MemorySegment segment, int fd, boolean ownsFd, long fileOffset) {
        this.arena = arena;
        this.segment = segment;
        this.fd = fd;
        this.ownsFd = ownsFd;
        this.fileOffset = fileOffset;
    }

    /**
     * Maps {@code size} bytes of {@code fd} at {@code offset}, read-write and shared.
     * The caller keeps ownership of {@code fd} (it may close it right after this call).
     */
    public static MemoryMapping map(int fd, long offset, long size) throws ErrnoException {
        return map(fd, offset, size, false);
    }

    private static MemoryMapping map(int fd, long offset, long size, boolean ownsFd) throws ErrnoException {
        if (size <= 0) {
            throw new IllegalArgumentException("mapping size must be positive: " + size);
        }
        if (offset < 0) {
            throw new IllegalArgumentException("mapping offset must not be negative: " + offset);
        }
        // mmap needs a page-aligned offset; map from the page below and slice (vhost-user
        // regions may carry any mmap_offset).
        long pageDelta = offset & 4095;
        long mapSize = size + pageDelta;
        if (mapSize < 0) {
            throw new IllegalArgumentException("mapping size overflows: " + size);
        }
        MemorySegment raw = Libc.mmap(mapSize, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, offset - pageDelta);
        long base = raw.address();
        Arena arena = Arena.ofShared();
        MemorySegment whole = raw.reinterpret(mapSize, arena, s -> {
            try {
                Libc.munmap(base, mapSize);
            } catch (ErrnoException e) {
                throw new IllegalStateException(e);
            }
        });
        return new MemoryMapping(arena, whole.asSlice(pageDelta, size), fd, ownsFd, offset);
    }

    /** A new anonymous memfd of {@code size} bytes, mapped; the mapping owns the fd. */
    public static MemoryMapping memfd(String name, long size) throws ErrnoException {
        int fd = Libc.memfdCreate(name);
        try {
            Libc.ftruncate(fd, size);
            return map(fd, 0, size, true);
        } catch (ErrnoException | RuntimeException e) {
            try {
                Libc.close(fd);
            } catch (ErrnoException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /**
     * Wraps native memory this process already owns (an {@link Arena} allocation, say) as a
     * mapping, for tests, benchmarks and embedding. Nothing is unmapped on release; the memory
     * lives as long as its arena. There is no file descriptor ({@link #fd()} is -1), so such
     * memory cannot be shared with another process.
     */
    public static MemoryMapping ofSegment(MemorySegment nativeSegment) {
        if (!nativeSegment.isNative()) {
            throw new IllegalArgumentException("guest memory must be native memory, not a heap segment");
        }
        return new MemoryMapping(null, nativeSegment, -1, false, 0);
    }

    /** The mapped bytes. Valid until the last {@link #release()}. */
    public MemorySegment segment() {
        return segment;
    }

    public long size() {
        return segment.byteSize();
    }

    /** The file descriptor this mapping was made from; only meaningful while it is open. */
    public int fd() {
        return fd;
    }

    public boolean ownsFd() {
        return ownsFd;
    }

    /** Offset in the file where the mapping starts. */
    public long fileOffset() {
        return fileOffset;
    }

    /** Adds a user. Fails if the mapping is already unmapped. */
    public MemoryMapping retain() {
        while (true) {
            int n = refs.get();
            if (n <= 0) {
                throw new IllegalStateException("mapping already released");
            }
            if (refs.compareAndSet(n, n + 1)) {
                return this;
            }
        }
    }

    /** Drops a user; the last one unmaps (and closes the fd when owned). */
    public void release() {
        int n = refs.decrementAndGet();
        if (n == 0) {
            if (arena != null) {
                arena.close();
            }
            if (ownsFd) {
                Libc.closeQuietly(fd);
            }
        } else if (n < 0) {
            throw new IllegalStateException("mapping released more often than retained");
        }
    }

    /** Whether {@link #segment()} may still be used. */
    public boolean isMapped() {
        return refs.get() > 0;
    }
}
