package org.jvirtio.testkit.transports;

import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/** What the rigs share. */
final class Rigs {
    private Rigs() {
    }

    /** Polls {@code done} (spinning briefly, then sleeping 50 us at a time) for up to {@code millis}. */
    static boolean await(BooleanSupplier done, long millis) {
        long start = System.nanoTime();
        long deadline = start + millis * 1_000_000L;
        while (!done.getAsBoolean()) {
            long now = System.nanoTime();
            if (now - deadline > 0) {
                return false;
            }
            if (now - start < 200_000) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(50_000);
            }
        }
        return true;
    }
}
