package org.jvirtio.net;

/**
 * The room of a receive queue's waiting frames, shared among the ports sending into it: a port
 * may hold at most {@code capacity / (senders + 1)} frames, the senders counted with itself, so
 * that there is always room for one more sender. A port flooding the switch fills its share, never
 * the whole queue: a lone storming sender holds at most half of it, and a newcomer finds room
 * while every other sender keeps within its share (which shrinks as senders arrive; one over it
 * takes nothing until it has drained below). Not thread-safe: the receive queue's lock guards it.
 */
final class SenderShares {
    private final int capacity;
    /** Frames waiting per sending port id (grown as ports with larger ids send). */
    private int[] waitingFrom = new int[16];
    private int senders;
    private int total;

    SenderShares(int capacity) {
        this.capacity = capacity;
    }

    /** Room for one more frame from port {@code from}: counted, true; false when the queue is full or the port at its share. */
    boolean take(int from) {
        if (total >= capacity) {
            return false;
        }
        if (from >= waitingFrom.length) {
            waitingFrom = java.util.Arrays.copyOf(waitingFrom, Math.max(from + 1, waitingFrom.length * 2));
        }
        int mine = waitingFrom[from];
        if (atShare(mine, senders + (mine == 0 ? 1 : 0) + 1, capacity)) {
            return false;
        }
        if (mine == 0) {
            senders++;
        }
        waitingFrom[from] = mine + 1;
        total++;
        return true;
    }

    /**
     * Whether a sender holding {@code mine} frames is at its share, {@code max(1, capacity / k)}
     * ({@code k}: the senders counted with it, plus one), without a division per frame:
     * {@code mine >= max(1, floor(capacity / k))} exactly when {@code mine >= 1} and
     * {@code (mine + 1) * k > capacity}.
     */
    static boolean atShare(int mine, int k, int capacity) {
        return mine >= 1 && (long) (mine + 1) * k > capacity;
    }

    /** A frame from port {@code from} left the queue (delivered or dropped). */
    void release(int from) {
        if (--waitingFrom[from] == 0) {
            senders--;
        }
        total--;
    }

    /** Frames waiting from port {@code from}. */
    int waiting(int from) {
        return from < waitingFrom.length ? waitingFrom[from] : 0;
    }

    /** Frames waiting in all. */
    int total() {
        return total;
    }
}
