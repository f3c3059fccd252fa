package org.jvirtio.blk;

import org.jvirtio.api.QueueIo;

/**
 * The asynchronous backend SPI: the I/O channel of one queue, used only from that queue's
 * thread. Each operation queued here completes exactly once through
 * {@link BlockRequest#complete(long)}, possibly before the call returns (a RAM disk) or later
 * from {@link #reap()} (io_uring). Operations are queued until {@link #submit()}, which the
 * device calls once per batch of popped requests.
 *
 * <p>Results: the byte count for reads and writes (the whole length; an implementation retries
 * short transfers itself), 0 for the others, or {@code -errno}.
 */
public interface BlockQueueIo extends QueueIo, AutoCloseable {
    /** Reads {@link BlockRequest#length()} bytes at {@link BlockRequest#offset()} into the request's buffers. */
    void read(BlockRequest r);

    /** Writes the request's buffers; {@code dsync}: durable before completing (writethrough). */
    void write(BlockRequest r, boolean dsync);

    /** fdatasync. */
    void flush(BlockRequest r);

    /** DISCARD or WRITE_ZEROES of one range: {@code mode} is one of the {@code DEALLOC_*} values. */
    void deallocate(BlockRequest r, long offset, long length, int mode);

    int DEALLOC_DISCARD = 0;
    int DEALLOC_ZERO = 1;
    int DEALLOC_ZERO_UNMAP = 2;

    /** Hands everything queued since the last call to the kernel (one system call at most). */
    @Override
    void submit();

    /**
     * A file descriptor that becomes readable when completions wait for {@link #reap()}, or -1
     * when every operation completes before its call returns.
     */
    @Override
    int completionFd();

    /** Delivers the completions that are ready; returns how many. Never blocks. */
    @Override
    int reap();

    /** Operations submitted and not yet completed. */
    @Override
    int pending();

    /** Releases the channel; called with nothing pending. */
    @Override
    void close();
}
