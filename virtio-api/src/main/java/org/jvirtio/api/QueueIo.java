package org.jvirtio.api;

/**
 * A queue's asynchronous side, as the queue engine drives it: the operations a
 * {@link QueueHandler} queued while it started chains, handed to their backend once per batch
 * ({@link #submit}), and their completions, delivered when {@link #completionFd()} is readable
 * ({@link #reap}). A handler whose chains complete before {@code start} returns has none
 * ({@link #NONE}); one with I/O of its own returns its channel from {@link QueueHandler#io()}
 * (virtio-blk's io_uring channel, a {@link CompletionMailbox}, an {@link Inbox}), and the engine
 * calls it directly. Every method is called on the queue's thread.
 */
public interface QueueIo {
    /** Nothing asynchronous: every chain completes within {@code start}. */
    QueueIo NONE = new QueueIo() {
        @Override
        public String toString() {
            return "QueueIo.NONE";
        }
    };

    /** Hands what was queued since the last call to the backend (one system call at most). */
    default void submit() {
    }

    /**
     * A file descriptor that becomes readable when completions wait for {@link #reap}, or -1 when
     * there are none. The queue's host watches it (and reads an eventfd's counter before it calls
     * {@code reap}).
     */
    default int completionFd() {
        return -1;
    }

    /**
     * Delivers the completions that are ready (each through the {@link QueueCompletions} the
     * handler was opened with); never blocks.
     *
     * @return how many were delivered
     */
    default int reap() {
        return 0;
    }

    /** Operations submitted and not yet completed: the engine's busy-poll reaps while this is positive. */
    default int pending() {
        return 0;
    }
}
