package org.jvirtio.api;

import org.slf4j.Logger;

/**
 * A WARN line per guest mistake, but not a flood: at most {@code burst} lines per interval go
 * out; the rest are counted, and the next line that goes out says how many were left out. For
 * the places a guest (or front-end) decides how often they run: a hostile driver can make a
 * request fail a million times a second, and the log must still say what happened without
 * filling the disk or slowing the queue thread. Thread-safe; only the logging path pays.
 */
public final class RateLimitedLog {
    private final Logger log;
    private final int burst;
    private final long intervalNanos;
    private long windowStart;
    private int inWindow;
    private long suppressed;

    /**
     * @param burst         lines per interval at most
     * @param intervalNanos the interval
     */
    public RateLimitedLog(Logger log, int burst, long intervalNanos) {
        if (burst < 1 || intervalNanos <= 0) {
            throw new IllegalArgumentException("burst " + burst + ", interval " + intervalNanos + " ns");
        }
        this.log = log;
        this.burst = burst;
        this.intervalNanos = intervalNanos;
        this.windowStart = System.nanoTime() - intervalNanos;
    }

    /** Ten lines per second: the default for per-request guest mistakes. */
    public static RateLimitedLog perSecond(Logger log) {
        return new RateLimitedLog(log, 10, 1_000_000_000L);
    }

    /** Logs at WARN unless this interval's lines are used up (then counts it). */
    public void warn(String format, Object... args) {
        long left;
        synchronized (this) {
            long now = System.nanoTime();
            if (now - windowStart >= intervalNanos) {
                windowStart = now;
                inWindow = 0;
            }
            if (inWindow == burst) {
                suppressed++;
                return;
            }
            inWindow++;
            left = suppressed;
            suppressed = 0;
        }
        if (left == 0) {
            log.warn(format, args);
        } else if (log.isWarnEnabled()) {
            log.warn(org.slf4j.helpers.MessageFormatter.arrayFormat(format, args).getMessage() + " (" + left + " similar lines left out)");
        }
    }

    /** Lines left out since the last one that went out. */
    public synchronized long suppressed() {
        return suppressed;
    }
}
