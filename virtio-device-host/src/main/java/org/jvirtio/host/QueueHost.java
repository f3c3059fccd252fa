package org.jvirtio.host;

/**
 * Runs queue engines: gives each {@link QueueEngine} an owning thread that calls
 * {@link QueueEngine#open()} first, {@link QueueEngine#serve()} on every kick (or periodically
 * when the queue has no kick eventfd), and {@link QueueEngine#reapCompletions()} whenever the
 * completion fd fires; when either returns true (it yielded with work left) the host calls
 * {@code serve()} again soon, after letting the thread's other work run.
 *
 * <p>Two hosts come with the framework: {@link #threadPerQueue(long)} (a platform thread per
 * queue blocking in poll(2)) and {@link IoThreads} (a few Netty epoll event loops shared by
 * every queue). Which one runs a device is configuration, not the device's choice.
 */
public interface QueueHost extends AutoCloseable {
    /** Starts serving {@code engine}; returns once it is open and has checked its ring once. */
    Started start(QueueEngine engine);

    /** A queue being served. */
    interface Started {
        /**
         * Stops taking chains, waits until every chain in flight has completed and been returned
         * to the driver, then closes the engine. Idempotent.
         */
        void stop();
    }

    /** Releases the host's threads (after every queue stopped). */
    @Override
    default void close() {
    }

    /** One platform thread per queue, blocking in poll(2); no busy polling. */
    QueueHost THREAD_PER_QUEUE = threadPerQueue(0);

    /**
     * One platform thread per queue, blocking in poll(2).
     *
     * @param pollMicros adaptive busy-polling window per queue (0: off)
     */
    static QueueHost threadPerQueue(long pollMicros) {
        if (pollMicros < 0) {
            throw new IllegalArgumentException("negative poll window: " + pollMicros);
        }
        return engine -> ThreadPerQueueHost.start(engine, pollMicros);
    }
}
