package org.jvirtio.transport.vhostuser;

import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.Interrupt;

/**
 * A queue's interrupt: the call eventfd the front-end set, which SET_VRING_CALL may replace
 * while the queue runs. Only the queue's thread signals; the control thread swaps. A fd
 * swapped out is closed by the queue thread at its next signal (before it reads the current
 * one, so it never writes to a closed fd, or to whatever reused its number), or by the
 * control thread once the queue stopped. One volatile read per interrupt, which is a
 * write(2) anyway.
 */
final class CallFd implements Interrupt {
    /** More swaps than this while the queue never signalled: the next one drains instead. */
    static final int MAX_RETIRED = 8;
    private volatile EventFd current;
    private volatile boolean anyRetired;
    private final List<EventFd> retired = new ArrayList<>();

    CallFd(EventFd initial) {
        this.current = initial;
    }

    @Override
    public void signal() {
        if (anyRetired) {
            closeRetired();
        }
        EventFd c = current;
        if (c != null) {
            c.signal();
        }
    }

    synchronized void swap(EventFd next) {
        if (current != null) {
            retired.add(current);
            anyRetired = true;
        }
        current = next;
    }

    synchronized int retiredCount() {
        return retired.size();
    }

    synchronized void closeRetired() {
        anyRetired = false;
        retired.forEach(EventFd::close);
        retired.clear();
    }
}
