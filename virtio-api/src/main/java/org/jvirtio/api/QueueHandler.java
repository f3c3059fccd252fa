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
 * order: {@link #open}, then any number of {@link #start} / {@link #submit} / {@link #reap},
 * then {@link #close} with nothing in flight.
 *
 * <p>A device whose requests complete at once (an entropy source, say) needs only
 * {@link #start}, and can be written as a lambda:
 * <pre>{@code
 * return (chain, slot) -> fill(chain.writer());   // returns the bytes written
 * }</pre>
 * A device with asynchronous I/O returns {@link #PENDING} and later reports each chain's end
 * through the {@link QueueCompletions} given to {@link #open}, from {@link #reap} (or from within
 * {@link #start} or {@link #submit}, when the I/O finished at once).
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
     * flight and the driver's buffers still in its ring, where the next backend finds them. The
     * usual shape: an eventfd as {@link #completionFd()}, signalled by whatever thread receives
     * the input, and {@code completions.resume()} in {@link #reap()}.
     */
    int NOT_NOW = -2;

    /**
     * Called on the owning thread before the first chain.
     *
     * @param completions how to report chains that {@link #start} left {@link #PENDING}
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

    /** Hands the operations queued by the last {@code start}s to the backend (one system call at most). */
    default void submit() {
    }

    /**
     * A file descriptor that becomes readable when completions wait for {@link #reap}, or -1 when
     * every chain completes before {@code start} or {@code submit} returns. The host watches it.
     */
    default int completionFd() {
        return -1;
    }

    /** Operations submitted and not yet reaped: the engine's busy-poll reaps while this is positive. */
    default int outstanding() {
        return 0;
    }

    /** Delivers the completions that are ready (each through {@link QueueCompletions}); never blocks. */
    default void reap() {
    }

    /** Releases what {@link #open} took; called with nothing in flight. */
    default void close() {
    }
}
