package org.jvirtio.api;

/**
 * One running queue handed to a device by a transport.
 *
 * @param index the queue index
 * @param queue the device side of the ring, already validated and activated
 * @param kick  where the driver's notifications arrive; null when the transport has none and
 *              the device must poll the ring (vhost-user's VHOST_USER_VRING_NOFD_MASK)
 * @param call  how to interrupt the driver for used buffers
 * @param stats the queue's counters, which the engine keeps and the device adds its own to
 *              (bytes moved, errors), kept across restarts of the queue
 */
public record QueueBinding(int index, Virtqueue queue, EventFd kick, Interrupt call, QueueStats stats) {
    /** A binding with counters of its own (the framework replaces them with the device's before it opens the queue). */
    public QueueBinding(int index, Virtqueue queue, EventFd kick, Interrupt call) {
        this(index, queue, kick, call, new QueueStats());
    }

    /** The same queue counting into {@code s}. */
    public QueueBinding withStats(QueueStats s) {
        return new QueueBinding(index, queue, kick, call, s);
    }
}
