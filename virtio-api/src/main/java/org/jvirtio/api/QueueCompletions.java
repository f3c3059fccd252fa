package org.jvirtio.api;

/** How a {@link QueueHandler} reports that a chain it left {@link QueueHandler#PENDING} is done. */
@FunctionalInterface
public interface QueueCompletions {
    /**
     * The chain started with {@code slot} is done: it goes back to the driver with
     * {@code writtenLength} bytes written (published with the next batch). Call exactly once per
     * pending chain, on the queue's thread.
     */
    void complete(int slot, int writtenLength);
}
