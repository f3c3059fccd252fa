package org.jvirtio.api;

import java.io.IOException;

/**
 * What a device does with one of its queues. A device returns one from
 * {@link VirtioDevice#openQueue(QueueBinding)}; the framework's queue engine (module
 * virtio-device-host) owns the thread and the ring: it pops chains, hands each to
 * {@link #start}, publishes used elements in batches with one interrupt decision per publish,
 * busy-polls adaptively, yields a busy thread after its serve budget, and on stop takes nothing
 * new and waits for what is in flight. A device never starts a thread of its own.
 *
 * <p>Every method is called from the one thread that owns the queue (no locks needed), in this
 * order: {@link #open}, {@link #io()}, then any number of {@link #start} and calls of the
 * {@link QueueIo}, then {@link #close} with nothing in flight.
 *
 * <p>A device whose requests complete at once (an entropy source, say) needs only
 * {@link #start}, and can be written as a lambda:
 * <pre>{@code
 * return (chain, slot) -> fill(chain.writer());   // returns the bytes written
 * }</pre>
 * A device with asynchronous I/O returns {@link #PENDING} and later reports each chain's end
 * through the {@link QueueCompletions} given to {@link #open}, from its {@link QueueIo}'s
 * {@code reap} (or from within {@link #start} or {@code submit}, when the I/O finished at once):
 * its {@link #io()} is that channel (virtio-blk's io_uring, a {@link CompletionMailbox} for
 * completions from other threads, an {@link Inbox} for input from the world).
 */
@FunctionalInterface
public interface QueueHandler {
    /** {@link #start} returns this when the chain completes (or completed) through {@link QueueCompletions}. */
    int PENDING = -1;

    /**
     * {@link #start} returns this when the device has nothing for the chain yet (no input to fill
     * a receive buffer with, no budget left in a rate limit): the chain goes back into the ring
     * untaken, as if never popped, and the queue takes no more chains (it leaves notifications
     * off) until the device calls {@link QueueCompletions#resume()}. A device that waits for the
     * world this way holds nothing: a stop, a migration or a backend restart finds no request in
     * flight and the driver's buffers still in its ring, where the next backend finds them. An
     * {@link Inbox} does all of this for input that arrives on other threads (a {@link QueueIo}
     * whose eventfd that thread signals, and whose {@code reap} resumes the queue); a device that
     * waits for time (a rate limit) calls {@link QueueCompletions#resumeAfter} before it returns
     * this.
     */
    int NOT_NOW = -2;

    /**
     * Called on the owning thread before the first chain.
     *
     * @param completions how to report chains that {@link #start} left {@link #PENDING}, and to
     *                    wake a queue it put to rest with {@link #NOT_NOW}
     */
    default void open(QueueCompletions completions) throws IOException {
    }

    /**
     * Serves one chain the driver made available.
     *
     * @param chain the chain; valid until it is completed
     * @param slot  a number in [0, queue size) that names this chain until it completes (no other
     *              chain in flight on this queue has it): an index into per-request state the
     *              handler keeps, so that nothing is allocated per request
     * @return the number of bytes written into the chain's writable buffers (the chain is done),
     *         {@link #PENDING}, or {@link #NOT_NOW} (write nothing into the chain then)
     */
    int start(DescriptorChain chain, int slot);

    /**
     * The handler's asynchronous side, asked once after {@link #open}: what it queued while
     * starting chains is submitted through it, and its completions are reaped through it when its
     * {@link QueueIo#completionFd()} fires. {@link QueueIo#NONE} (the default) for a handler whose
     * chains complete within {@link #start}.
     */
    default QueueIo io() {
        return QueueIo.NONE;
    }

    /** Releases what {@link #open} took; called with nothing in flight. */
    default void close() {
    }
}
