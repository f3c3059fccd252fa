package org.jvirtio.host;

import java.util.Arrays;

/**
 * The queues that share one thread, as a queue's busy-poll sees them: it polls past its adaptive
 * window only while the others are idle, and stops as soon as one of them has chains to take
 * (its kick is then waiting in the thread's epoll set). Touched only on that thread.
 */
final class PollGroup {
    private QueueEngine[] members = new QueueEngine[0];

    void add(QueueEngine e) {
        members = Arrays.copyOf(members, members.length + 1);
        members[members.length - 1] = e;
        e.group(this);
    }

    void remove(QueueEngine e) {
        QueueEngine[] m = Arrays.stream(members).filter(x -> x != e).toArray(QueueEngine[]::new);
        if (m.length != members.length) {
            members = m;
            e.group(null);
        }
    }

    /** Whether every queue but {@code self} has nothing in flight and nothing available. */
    boolean othersIdle(QueueEngine self) {
        for (QueueEngine e : members) {
            if (e != self && !e.idle()) {
                return false;
            }
        }
        return true;
    }

    /** Whether a queue other than {@code self} has chains it would take now. */
    boolean otherWantsThread(QueueEngine self) {
        for (QueueEngine e : members) {
            if (e != self && e.wantsThread()) {
                return true;
            }
        }
        return false;
    }
}
