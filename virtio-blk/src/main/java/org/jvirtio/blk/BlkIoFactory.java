package org.jvirtio.blk;

import java.io.IOException;

/**
 * Opens the {@link BlockQueueIo} of one queue. The default runs the backend's synchronous
 * methods inline; virtio-blk-dataplane supplies io_uring for files.
 */
@FunctionalInterface
public interface BlkIoFactory {
    /**
     * Called on the thread that will own the channel.
     *
     * @param depth the most operations that can be pending at once
     */
    BlockQueueIo open(BlockBackend backend, int depth) throws IOException;

    /** Synchronous I/O on the queue's thread (or the backend's own channel, {@link BlockBackend#openQueueIo}). */
    BlkIoFactory INLINE = (backend, depth) -> {
        BlockQueueIo own = backend.openQueueIo(depth);
        return own != null ? own : new InlineQueueIo(backend);
    };
}
