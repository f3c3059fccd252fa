package org.jvirtio.blk;

import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Where a virtio-blk device's bytes live. Offsets and lengths are in bytes and already checked
 * against {@link #size()} by the device.
 *
 * <p>Two ways in. The device submits requests through a {@link BlockQueueIo} per queue (the
 * asynchronous SPI: submit, then a completion); {@link BlkIoFactory} opens it. The synchronous
 * methods below are the simple form a backend implements at least: {@link InlineQueueIo} runs
 * them on the queue's thread and completes before returning. Calls for one queue come from that
 * queue's thread; implementations must allow calls from several queues at once.
 *
 * <p>Guest memory is passed as a whole region segment plus an offset and a length, so a request
 * allocates nothing on its way to the backend.
 */
public interface BlockBackend extends Closeable {
    /** Size in bytes (a multiple of 512). May change: {@link #refreshSize()}. */
    long size();

    /** Reads the size again (after an image was grown or shrunk) and returns it. */
    default long refreshSize() throws IOException {
        return size();
    }

    default boolean readOnly() {
        return false;
    }

    /** Whether written data may sit in a volatile cache until {@link #flush()} (offer FLUSH, report writeback). */
    default boolean volatileCache() {
        return false;
    }

    default boolean supportsDiscard() {
        return !readOnly();
    }

    default boolean supportsWriteZeroes() {
        return !readOnly();
    }

    /** Fills {@code mem[memOffset, memOffset + length)} from disk offset {@code offset}. */
    void read(long offset, MemorySegment mem, long memOffset, long length) throws IOException;

    /** Writes {@code mem[memOffset, memOffset + length)} at disk offset {@code offset}. */
    void write(long offset, MemorySegment mem, long memOffset, long length) throws IOException;

    /** Makes every completed write durable. */
    default void flush() throws IOException {
    }

    /** The range may be deallocated; reads of it afterwards return zeros or the old data. */
    void discard(long offset, long length) throws IOException;

    /** The range reads as zeros afterwards; {@code unmap} allows deallocating it. */
    void writeZeroes(long offset, long length, boolean unmap) throws IOException;

    /**
     * A transfer of {@code r} failed with {@code errno}: if the backend knows a slower way that
     * works (O_DIRECT refusing unaligned guest buffers: bounce through an aligned buffer), it
     * transfers the request that way and returns true; otherwise false and the failure stands.
     */
    default boolean retryTransfer(BlockRequest r, boolean write, int errno) throws IOException {
        return false;
    }

    /**
     * The backend's own asynchronous channel for one queue (a network block store with a client
     * library of its own, RBD), opened on the queue's thread; null (the default) for backends that
     * the {@link BlkIoFactory} serves (files through io_uring, memory inline).
     *
     * @param depth the most operations that can be pending at once
     */
    default BlockQueueIo openQueueIo(int depth) throws IOException {
        return null;
    }

    /**
     * Asks to be told when the backend's size changes by itself (an image resized elsewhere):
     * {@code listener} runs on a thread of the backend's, and the device announces the new
     * capacity. Backends that only learn of a resize when asked ({@link #refreshSize()}, SIGHUP)
     * ignore it (the default).
     */
    default void watchResize(Runnable listener) {
    }

    /** A name for log lines. */
    String describe();
}
