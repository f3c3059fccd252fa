package org.jvirtio.host;

/**
 * A queue host's timer for one {@link QueueEngine}: the engine arms it when its device asks to be
 * resumed later ({@link org.jvirtio.api.QueueCompletions#resumeAfter}), and the host calls
 * {@link QueueEngine#timerExpired()} on the queue's thread once the delay has passed. An arming
 * replaces the one before it; a firing the engine no longer wants does nothing.
 */
@FunctionalInterface
public interface QueueTimer {
    /** Calls {@link QueueEngine#timerExpired()} on the queue's thread in {@code nanos}, from any earlier arming's place. */
    void arm(long nanos);
}
