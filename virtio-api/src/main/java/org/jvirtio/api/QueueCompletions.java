package org.jvirtio.api;

/**
 * How a {@link QueueHandler} reports that a chain it left {@link QueueHandler#PENDING} is done,
 * and wakes a queue it put to rest with {@link QueueHandler#NOT_NOW}. On the queue's thread.
 */
public interface QueueCompletions {
    /**
     * The chain started with {@code slot} is done: it goes back to the driver with
     * {@code writtenLength} bytes written (published with the next batch). Call exactly once per
     * pending chain, on the queue's thread.
     */
    void complete(int slot, int writtenLength);

    /**
     * The chain started with {@code slot} is done together with more chains the handler took from
     * the queue itself ({@link Virtqueue#pop()} within {@code start}; a frame over merged receive
     * buffers): {@code chains[0]} is the slot's chain, the rest follow it in the ring, and the
     * driver sees them all at once ({@link Virtqueue#addUsedTogether}). On the queue's thread.
     */
    void completeTogether(int slot, DescriptorChain[] chains, int[] writtenLengths, int n);

    /**
     * The device has something for the chains it turned away with {@link QueueHandler#NOT_NOW}:
     * the queue takes chains from the ring again (starting with the one put back). Call it from
     * the handler's {@link QueueIo#reap()}, woken through its {@link QueueIo#completionFd()} by
     * whichever thread got the input; the queue serves right after that reap. Does nothing on a
     * queue that is not resting.
     */
    void resume();

    /**
     * Resumes the queue by itself after {@code nanos} (as {@link #resume()} then), unless it was
     * resumed before: for a device that waits for time, not input (a rate limit whose budget is
     * spent until the next period). The framework's host owns the timer; the device starts no
     * thread and binds no timer of its own. Call it from {@link QueueHandler#start} before it
     * returns {@link QueueHandler#NOT_NOW}, or from {@code reap}. A later call replaces an earlier
     * one that has not fired; a stop cancels it.
     */
    void resumeAfter(long nanos);

    /**
     * Wakes this queue from another queue's handler that runs on the same thread (a frame handed
     * from one port's transmit queue to another port's receive queue, both on one I/O thread):
     * the host reaps it ({@link QueueIo#reap()}) and serves it before the thread next sleeps,
     * without the completion fd's system calls, and this returns true. On any other thread, or on
     * a host that cannot, it does nothing and returns false: signal the completion fd then. Any
     * thread.
     */
    default boolean wakeHere() {
        return false;
    }

    /**
     * Serves the ring's next chain now, from outside the queue's own serving (another queue's
     * handler on this queue's thread: a frame placed straight into a receive buffer by the
     * transmit queue that sent it, instead of waiting in an inbox for the receive queue's turn):
     * takes the chain and calls {@link QueueHandler#start} with it as a drain would, with the
     * same slots, counters and put-back ({@link QueueHandler#NOT_NOW}); what it returns is
     * published within the thread's current turn (through {@link #wakeHere()}, or at once).
     * False when it took no chain (the ring empty or broken, the queue stopping or every slot in
     * use) or the handler put it back. Only on the queue's own thread: the caller must know it
     * is there (a handler that saw its {@link QueueHandler#open} on this thread).
     */
    default boolean serveOneNow() {
        return false;
    }

    /**
     * A clock reading for the chains being served now: {@code System.nanoTime()} as the engine
     * read it for this batch (when the queue woke, finished a drain or reaped completions: at
     * most a serve budget, 2 ms, old while a chain is being started). A timestamp at no cost for
     * per-chain work that needs one coarsely (a MAC table's aging); on the queue's thread.
     */
    default long batchNanos() {
        return System.nanoTime();
    }
}
