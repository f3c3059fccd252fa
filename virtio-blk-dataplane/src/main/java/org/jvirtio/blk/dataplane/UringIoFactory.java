package org.jvirtio.blk.dataplane;

import java.io.IOException;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.blk.BlkIoFactory;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.BlockQueueIo;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.InlineQueueIo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Opens an io_uring per queue for file and block-device backends, and the inline synchronous
 * channel for memory backends. Where io_uring is unavailable (seccomp in a container, the
 * {@code kernel.io_uring_disabled} sysctl, an old kernel) it falls back to positional I/O on a
 * shared thread pool ({@link PooledQueueIo}) and says so once in the log. {@code -Djvirtio.io_uring=off}
 * forces the fallback. Each ring is probed with a NOP first, so a profile that allows
 * io_uring_setup but refuses io_uring_enter falls back too.
 */
public final class UringIoFactory implements BlkIoFactory {
    private static final Logger LOG = LoggerFactory.getLogger(UringIoFactory.class);

    private static final int POOL_THREADS = 16;

    private final boolean enabled;
    private final boolean inlineBufferedWrites;
    private final boolean inlineReads;
    private volatile java.util.concurrent.ExecutorService pool;
    private volatile boolean warned;
    private volatile String lastFallbackReason;

    public UringIoFactory() {
        this(!"off".equalsIgnoreCase(System.getProperty("jvirtio.io_uring", "on")));
    }

    public UringIoFactory(boolean enabled) {
        this(enabled, !"off".equalsIgnoreCase(System.getProperty("jvirtio.inline_writes", "on")));
    }

    /**
     * @param enabled              use io_uring where it works (false: the thread-pool fallback)
     * @param inlineBufferedWrites copy buffered writes into the page cache on the I/O thread
     *                             instead of through io_uring's io-wq ({@code -Djvirtio.inline_writes=off}
     *                             turns it off: a disk under heavy dirty-page throttling then
     *                             blocks io-wq workers, not the I/O thread)
     */
    public UringIoFactory(boolean enabled, boolean inlineBufferedWrites) {
        this(enabled, inlineBufferedWrites, !"off".equalsIgnoreCase(System.getProperty("jvirtio.inline_reads", "on")));
    }

    /**
     * @param inlineReads       read on the I/O thread what cannot wait: images on a memory-backed
     *                          file system (tmpfs), which io_uring hands to an io-wq worker, and
     *                          page-cache hits of other buffered images (RWF_NOWAIT), also on the
     *                          thread-pool fallback ({@code -Djvirtio.inline_reads=off} turns it off)
     */
    public UringIoFactory(boolean enabled, boolean inlineBufferedWrites, boolean inlineReads) {
        this.enabled = enabled;
        this.inlineBufferedWrites = inlineBufferedWrites;
        this.inlineReads = inlineReads;
    }

    @Override
    public BlockQueueIo open(BlockBackend backend, int depth) throws IOException {
        BlockQueueIo own = backend.openQueueIo(depth);
        if (own != null) {
            return own; // the backend brings its own asynchronous channel (RBD)
        }
        if (!(backend instanceof FileBackend file)) {
            return new InlineQueueIo(backend);
        }
        if (!enabled) {
            fallback("disabled with -Djvirtio.io_uring=off");
            return new PooledQueueIo(backend, pool(), inlineReads);
        }
        try {
            return new UringQueueIo(file, depth, inlineBufferedWrites, inlineReads);
        } catch (ErrnoException e) {
            fallback(e.getMessage());
            return new PooledQueueIo(backend, pool(), inlineReads);
        }
    }

    /** The fallback's worker threads, shared by every queue; made on first use, daemon threads. */
    private synchronized java.util.concurrent.ExecutorService pool() {
        if (pool == null) {
            java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();
            pool = java.util.concurrent.Executors.newFixedThreadPool(POOL_THREADS,
                    r -> Thread.ofPlatform().name("jvirtio-blk-pool-" + n.getAndIncrement()).daemon().unstarted(r));
        }
        return pool;
    }

    private void fallback(String why) {
        lastFallbackReason = why;
        if (!warned) {
            warned = true;
            LOG.warn("io_uring unavailable ({}): disk I/O falls back to pread/pwrite on a pool of {} threads", why, POOL_THREADS);
        }
    }

    /** Why the last queue fell back to synchronous I/O, or null if none did. */
    public String fallbackReason() {
        return lastFallbackReason;
    }

    /** Whether io_uring can be set up in this process (for tests and diagnostics). */
    public static boolean available() {
        try (IoUring r = IoUring.create(2)) {
            r.probe();
            return true;
        } catch (ErrnoException e) {
            return false;
        }
    }
}
