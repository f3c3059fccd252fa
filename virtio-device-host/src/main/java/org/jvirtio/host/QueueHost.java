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
         * Stops taking chains, without waiting: the first half of {@link #stop(long)}, for a
         * caller that stops many queues and then waits for them all. Idempotent.
         */
        void requestStop();

        /**
         * Stops taking chains and waits until every chain in flight has completed and been
         * returned to the driver, then closes the engine. Idempotent.
         *
         * <p>The wait is bounded: storage that never answers must not freeze the transport's
         * control loop (and QEMU, which waits for GET_VRING_BASE) or keep SIGTERM from ending
         * the process. Every 5 s of waiting is logged with the queue and what it waits for; at
         * {@code limitNanos} the queue is {@linkplain QueueEngine#abandon() abandoned}: the ring
         * is handed back without the requests still in flight, which complete later into
         * nothing, and the engine closes when the last of them has (see {@link #whenClosed}).
         *
         * @return true when the queue drained and closed, false when it was abandoned
         */
        boolean stop(long limitNanos);

        /** Stops with no limit; for tests and tools that own the storage. */
        default void stop() {
            stop(Long.MAX_VALUE);
        }

        /**
         * Runs {@code action} once the engine has closed (at once if it has): after an abandoned
         * stop that can be much later, and until then the queue's handler may still have I/O in
         * flight into guest memory, which must stay mapped.
         */
        void whenClosed(Runnable action);
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
        return threadPerQueue(pollMicros, PollingPolicy.DEFAULT_POLL_CREDIT_NANOS);
    }

    /**
     * Like {@link #threadPerQueue(long)}, with the polling each request served earns
     * ({@link PollingPolicy#creditPerRequest}; 0: none).
     */
    static QueueHost threadPerQueue(long pollMicros, long pollCreditNanos) {
        if (pollMicros < 0) {
            throw new IllegalArgumentException("negative poll window: " + pollMicros);
        }
        if (pollCreditNanos < 0) {
            throw new IllegalArgumentException("negative poll credit: " + pollCreditNanos);
        }
        return engine -> ThreadPerQueueHost.start(engine, pollMicros, pollCreditNanos);
    }
}
