package org.jvirtio.net;

/**
 * At most so many frames a second from a port, with bursts up to a second's worth (a token
 * bucket): frames over the rate are dropped (counted on the port), as a policer does, never held.
 * Thread-safe (a port's queue pairs share it).
 */
public final class RateLimitStage implements FrameStage {
    private final long perSecond;
    private final long nanosPerFrame;
    private final java.util.function.LongSupplier clock;
    /** When the bucket would be full again: tokens are (clock - full) / nanosPerFrame below the burst. */
    private long emptyAt;

    public RateLimitStage(long framesPerSecond) {
        this(framesPerSecond, System::nanoTime);
    }

    RateLimitStage(long framesPerSecond, java.util.function.LongSupplier clock) {
        if (framesPerSecond < 1) {
            throw new IllegalArgumentException("a rate limit must allow at least 1 frame a second, got " + framesPerSecond);
        }
        this.perSecond = framesPerSecond;
        this.nanosPerFrame = Math.max(1, 1_000_000_000L / framesPerSecond);
        this.clock = clock;
        this.emptyAt = clock.getAsLong() - 1_000_000_000L; // a full second's burst to start with
    }

    @Override
    public synchronized boolean accept(SwitchFrame frame) {
        long now = clock.getAsLong();
        // A bucket of one second's frames: never more credit than that.
        if (now - emptyAt > 1_000_000_000L) {
            emptyAt = now - 1_000_000_000L;
        }
        if (now - emptyAt < nanosPerFrame) {
            return false;
        }
        emptyAt += nanosPerFrame;
        return true;
    }

    @Override
    public String toString() {
        return "at most " + perSecond + " frames/s";
    }
}
