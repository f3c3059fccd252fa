package org.jvirtio.rng;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.api.linux.Native;

import static java.lang.foreign.ValueLayout.*;

/**
 * The rng queue under a {@link RateLimit}: a chain that finds the period's budget spent is put
 * back into the ring ({@link QueueHandler#NOT_NOW}) and the queue rests until the next period
 * starts, woken by a timerfd that the queue's host watches as this handler's completion fd. The
 * waiting chains stay in the driver's ring, in its order: nothing is held, so a stop (QEMU's
 * GET_VRING_BASE, a migration) never waits for the period. Nothing allocated per request.
 */
final class RateLimitedQueue implements QueueHandler {
    /** Fills a chain with at most {@code max} bytes; returns the bytes written. */
    @FunctionalInterface
    interface Filler {
        int fill(DescriptorChain chain, int max);
    }

    // One holder class per handle: each is bound on first use (Native, "Binding on first use").
    private static final class TimerfdCreate {
        static final MethodHandle H = Native.downcall("timerfd_create",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    }
    private static final class TimerfdSettime {
        static final MethodHandle H = Native.downcall("timerfd_settime",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    }
    private static final int CLOCK_MONOTONIC = 1;

    private final Filler filler;
    private final long maxBytes;
    private final long periodNanos;
    private long budget;
    private long periodStart;
    private boolean armed;
    private QueueCompletions completions;
    private Arena arena;
    private MemorySegment spec;
    private int timerFd = -1;

    RateLimitedQueue(Filler filler, RateLimit limit) {
        this.filler = filler;
        this.maxBytes = limit.maxBytes();
        this.periodNanos = limit.periodMillis() * 1_000_000;
    }

    @Override
    public void open(QueueCompletions completions) throws IOException {
        this.completions = completions;
        try {
            timerFd = (int) TimerfdCreate.H.invokeExact(CLOCK_MONOTONIC, Libc.TFD_NONBLOCK | Libc.TFD_CLOEXEC);
        } catch (Throwable t) {
            throw new IOException("timerfd_create: " + t, t);
        }
        if (timerFd < 0) {
            throw new IOException("timerfd_create failed");
        }
        arena = Arena.ofShared();
        spec = arena.allocate(32, 8);
        periodStart = System.nanoTime();
        budget = maxBytes;
    }

    @Override
    public int start(DescriptorChain chain, int slot) {
        refill();
        if (budget <= 0) {
            arm();
            return NOT_NOW;
        }
        int n = filler.fill(chain, (int) Math.min(budget, VirtioRng.MAX_PER_REQUEST));
        budget -= n;
        return n;
    }

    private void refill() {
        long now = System.nanoTime();
        if (now - periodStart >= periodNanos) {
            periodStart = now - (now - periodStart) % periodNanos;
            budget = maxBytes;
        }
    }

    @Override
    public int completionFd() {
        return timerFd;
    }

    /** The timer fired (the host has read it): the next period began, the queue takes chains again. */
    @Override
    public void reap() {
        armed = false;
        completions.resume();
    }

    /** Wakes the queue when the current period ends. */
    private void arm() {
        if (armed) {
            return;
        }
        long left = Math.max(1, periodStart + periodNanos - System.nanoTime());
        spec.fill((byte) 0);
        spec.set(JAVA_LONG, 16, left / 1_000_000_000L);
        spec.set(JAVA_LONG, 24, left % 1_000_000_000L);
        try {
            int r = (int) TimerfdSettime.H.invokeExact(timerFd, 0, spec, MemorySegment.NULL);
            armed = r == 0;
        } catch (Throwable t) {
            throw new IllegalStateException("timerfd_settime: " + t, t);
        }
    }

    @Override
    public void close() {
        if (timerFd >= 0) {
            Libc.closeQuietly(timerFd);
            timerFd = -1;
        }
        if (arena != null) {
            arena.close();
            arena = null;
        }
    }
}
