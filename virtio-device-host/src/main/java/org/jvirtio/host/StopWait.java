package org.jvirtio.host;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.slf4j.Logger;

/** How a {@link QueueHost.Started} waits for its queue to finish stopping: the part both hosts share. */
final class StopWait {
    private static final long LOG_NANOS = TimeUnit.SECONDS.toNanos(5);

    private StopWait() {
    }

    /**
     * Waits up to {@code limitNanos} for {@code done}, the queue's end, saying every 5 s how many
     * requests the device still holds. False if the time ran out or the waiting thread was
     * interrupted (its interrupt status kept): the caller then abandons what is in flight.
     */
    static boolean await(Future<?> done, long limitNanos, QueueEngine engine, Logger log) {
        long started = System.nanoTime();
        while (true) {
            long left = limitNanos - (System.nanoTime() - started);
            if (left <= 0) {
                return false;
            }
            try {
                done.get(Math.min(left, LOG_NANOS), TimeUnit.NANOSECONDS);
                return true;
            } catch (TimeoutException e) {
                if (System.nanoTime() - started < limitNanos) {
                    log.info("queue {}: stopping; still waiting for {} requests in flight at the device after {} s", engine.index(),
                            engine.inFlight(), TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                log.warn("queue {}: interrupted while stopping", engine.index());
                return false;
            } catch (ExecutionException e) {
                throw new IllegalStateException(e.getCause());
            }
        }
    }

    /** Says that the queue was handed back without what the device still holds. */
    static void gaveUp(long startedNanos, QueueEngine engine, Logger log) {
        org.jvirtio.api.jfr.DrainGaveUpEvent.emit(engine.index(), engine.inFlight(),
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startedNanos));
        log.warn("queue {}: gave up after {} ms waiting for {} requests in flight at the device: the ring is handed back without"
                + " them (the driver never sees them complete); the device finishes them in the background and guest memory"
                + " stays mapped until it has", engine.index(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startedNanos),
                engine.inFlight());
    }
}
