package org.jvirtio.blk;

/**
 * Runs the queues of a {@link VirtioBlkDevice}: gives each {@link BlkQueue} an owning thread that
 * calls {@link BlkQueue#open()} first, {@link BlkQueue#serve()} on every kick (or periodically
 * when the queue has no kick eventfd), and {@link BlkQueue#reapCompletions()} whenever the
 * completion eventfd fires; when either returns true (it yielded with work left) the host calls
 * {@code serve()} again soon, after letting the thread's other work run. The default is a thread per queue; virtio-blk-dataplane runs queues
 * on a few epoll event loops instead.
 */
public interface BlkQueueHost extends AutoCloseable {
    /** Starts serving {@code queue}. */
    Started start(BlkQueue queue);

    /** A queue being served. */
    interface Started {
        /**
         * Stops taking requests, waits until every request in flight has completed and been
         * returned to the driver, then closes the queue. Idempotent.
         */
        void stop();
    }

    /** Releases the host's threads (after every queue stopped). */
    @Override
    default void close() {
    }

    /** One platform thread per queue, blocking in poll(2). */
    BlkQueueHost THREAD_PER_QUEUE = ThreadPerQueueHost::start;
}
