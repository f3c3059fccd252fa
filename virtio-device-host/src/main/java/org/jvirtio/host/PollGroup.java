package org.jvirtio.host;

import java.util.Arrays;

/**
 * The queues that share one thread, as a queue's busy-poll sees them: it polls past its adaptive
 * window only while the others are idle, and stops as soon as one of them has chains to take
 * (its kick is then waiting in the thread's epoll set) or was woken by a queue of this thread (its
 * reap is then among the thread's tasks, {@link QueueEngine#wakeHere}: a switch port's receive
 * queue given a frame by another port's transmit queue; while the sender polled on, the frame would
 * wait for the end of its window). Touched only on that thread.
 */
final class PollGroup {
    private QueueEngine[] members = new QueueEngine[0];
    /** Per member: a wake-up of it waits among the thread's tasks. */
    private boolean[] woken = new boolean[0];

    void add(QueueEngine e) {
        members = Arrays.copyOf(members, members.length + 1);
        members[members.length - 1] = e;
        woken = Arrays.copyOf(woken, members.length);
        e.group(this);
    }

    void remove(QueueEngine e) {
        for (int i = 0; i < members.length; i++) {
            if (members[i] == e) {
                QueueEngine[] m = new QueueEngine[members.length - 1];
                boolean[] w = new boolean[m.length];
                System.arraycopy(members, 0, m, 0, i);
                System.arraycopy(members, i + 1, m, i, m.length - i);
                System.arraycopy(woken, 0, w, 0, i);
                System.arraycopy(woken, i + 1, w, i, m.length - i);
                members = m;
                woken = w;
                e.group(null);
                return;
            }
        }
    }

    /** A wake-up of {@code e} was queued among the thread's tasks (true), or has run (false). */
    void woken(QueueEngine e, boolean queued) {
        for (int i = 0; i < members.length; i++) {
            if (members[i] == e) {
                woken[i] = queued;
            }
        }
    }

    /** Whether every queue but {@code self} has nothing in flight, nothing available and no wake-up waiting. */
    boolean othersIdle(QueueEngine self) {
        for (int i = 0; i < members.length; i++) {
            if (members[i] != self && (woken[i] || !members[i].idle())) {
                return false;
            }
        }
        return true;
    }

    /** Whether a queue other than {@code self} has chains it would take now, or a wake-up waiting. */
    boolean otherWantsThread(QueueEngine self) {
        for (int i = 0; i < members.length; i++) {
            if (members[i] != self && (woken[i] || members[i].wantsThread())) {
                return true;
            }
        }
        return false;
    }
}
