package org.jvirtio.testkit;

import java.time.Duration;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * Waits for a condition a test cannot be told about directly (another thread's work, a process's
 * output): polls it until it holds, and fails with what was awaited when the time runs out. The
 * one deadline loop of the tests.
 */
public final class Await {
    private Await() {
    }

    /**
     * Polls {@code condition} (every millisecond) until it holds.
     *
     * @param what what is awaited, for the failure ("the queue rests")
     * @throws AssertionError when it did not hold within {@code timeout}
     */
    public static void await(BooleanSupplier condition, Duration timeout, String what) {
        await(condition, timeout, () -> what);
    }

    /** As {@link #await(BooleanSupplier, Duration, String)}, with the failure's text made when it fails (the state then). */
    public static void await(BooleanSupplier condition, Duration timeout, Supplier<String> what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("not within " + timeout.toMillis() + " ms: " + what.get());
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted while waiting for: " + what.get(), e);
            }
        }
    }

    /** A timeout of {@code seconds}, for readable calls: {@code await(done, seconds(5), "done")}. */
    public static Duration seconds(long seconds) {
        return Duration.ofSeconds(seconds);
    }
}
