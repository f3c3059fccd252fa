package org.jvirtio.transport.vhostuser;

import java.io.IOException;

import org.jvirtio.api.EventFd;
import org.jvirtio.ring.QueueDriver;

/**
 * One queue of a {@link DriverSession}: the driver side of the ring (split or packed, as the
 * session negotiated), the kick eventfd the device
 * waits on and the call eventfd it interrupts. Used by one thread at a time.
 */
public final class DriverQueue implements AutoCloseable {
    private final int index;
    private final QueueDriver ring;
    private final EventFd kick;
    private final EventFd call;

    private DriverQueue(int index, QueueDriver ring, EventFd kick, EventFd call) {
        this.index = index;
        this.ring = ring;
        this.kick = kick;
        this.call = call;
    }

    static DriverQueue create(int index, QueueDriver ring) throws IOException {
        EventFd kick = EventFd.create(false);
        try {
            return new DriverQueue(index, ring, kick, EventFd.create(false));
        } catch (IOException e) {
            kick.close();
            throw e;
        }
    }

    public int index() {
        return index;
    }

    /** The driver side of the ring: add chains, reap used ones. */
    public QueueDriver ring() {
        return ring;
    }

    public EventFd kick() {
        return kick;
    }

    public EventFd call() {
        return call;
    }

    /** Makes the chains added since the last publish visible and kicks, if the device wants a kick. */
    public void publish() {
        if (ring.publish()) {
            kick.signal();
        }
    }

    /**
     * Reaps used chains, waiting as a guest does when there are none: ask for an interrupt
     * (EVENT_IDX used_event, or clearing NO_INTERRUPT), re-check, sleep on the call eventfd.
     *
     * @return the number of used chains handed to {@code handler}; 0 when {@code timeoutMillis}
     *         passed without any
     */
    public int awaitUsed(QueueDriver.UsedHandler handler, long timeoutMillis) throws IOException {
        return ring.awaitUsed(handler, timeoutMillis, call::await);
    }

    /** Closes the eventfds. */
    @Override
    public void close() {
        kick.close();
        call.close();
    }
}
