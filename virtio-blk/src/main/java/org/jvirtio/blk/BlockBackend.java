package org.jvirtio.blk;

import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Where a virtio-blk device's bytes live. Offsets and lengths are in bytes and already checked
 * against {@link #size()} by the device. Calls for one queue come from that queue's thread;
 * implementations must allow calls from several queues at once.
 *
 * <p>This is the synchronous form used with {@code QueueWorker}; the io_uring data plane
 * (virtio-blk-dataplane) submits the same operations asynchronously.
 */
public interface BlockBackend extends Closeable {
    /** Size in bytes (a multiple of 512). May change: {@link #refreshSize()}. */
    long size();

    /** Reads the size again (after an image was grown or shrunk) and returns it. */
    default long refreshSize() throws IOException {
        return size();
    }

    boolean readOnly();

    /** Whether written data may sit in a volatile cache until {@link #flush()} (offer FLUSH, report writeback). */
    boolean volatileCache();

    boolean supportsDiscard();

    boolean supportsWriteZeroes();

    /** Fills {@code dst} from {@code offset}. */
    void read(long offset, MemorySegment dst) throws IOException;

    /** Writes {@code src} at {@code offset}. */
    void write(long offset, MemorySegment src) throws IOException;

    /** Makes every completed write durable. */
    void flush() throws IOException;

    /** The range may be deallocated; reads of it afterwards return zeros or the old data. */
    void discard(long offset, long length) throws IOException;

    /** The range reads as zeros afterwards; {@code unmap} allows deallocating it. */
    void writeZeroes(long offset, long length, boolean unmap) throws IOException;

    /** A name for log lines. */
    String describe();
}
