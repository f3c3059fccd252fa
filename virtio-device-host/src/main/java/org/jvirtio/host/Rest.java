package org.jvirtio.host;

/**
 * Whether a queue rests (its device turned a chain away, {@code NOT_NOW}) and when it is to be
 * resumed by the host's timer ({@code resumeAfter}). The queue's thread only.
 */
final class Rest {
    private boolean resting;
    /** When to resume, on the engine's clock; 0 for no such time. */
    private long resumeAt;
    /** How the host wakes the queue at {@link #resumeAt}; null: the host asks {@link #deadline()}. */
    private QueueTimer timer;

    void timer(QueueTimer t) {
        this.timer = t;
    }

    boolean resting() {
        return resting;
    }

    /** The device turned a chain away. */
    void begin() {
        resting = true;
    }

    /** The device resumed the queue (or the timer did): a pending time is forgotten. */
    void end() {
        resting = false;
        resumeAt = 0;
    }

    /** The device asks to be resumed {@code nanos} after {@code now}; a later ask replaces an earlier one. */
    void resumeAfter(long now, long nanos) {
        if (nanos < 0) {
            throw new IllegalArgumentException("negative delay: " + nanos);
        }
        long d = Math.max(1, nanos);
        resumeAt = now + d;
        if (resumeAt == 0) {
            resumeAt = 1; // 0 means "none"
        }
        if (timer != null) {
            timer.arm(d);
        }
    }

    long deadline() {
        return resumeAt;
    }

    /**
     * The host's timer fired at {@code now}: true when the queue is to be resumed now (it rested
     * and its time came); an early firing re-arms for what is left, a stale one does nothing.
     */
    boolean due(long now) {
        if (resumeAt == 0) {
            return false;
        }
        long left = resumeAt - now;
        if (left > 0) {
            if (timer != null) {
                timer.arm(left);
            }
            return false;
        }
        resumeAt = 0;
        if (!resting) {
            return false;
        }
        resting = false;
        return true;
    }
}
