package org.jvirtio.rng;

/**
 * At most {@code maxBytes} of entropy per {@code periodMillis} for the whole queue, as
 * vhost-device-rng's {@code --max-bytes} and {@code --period} offer. A request that finds the
 * period's budget spent waits for the next period; one that finds part of it gets that part.
 *
 * @param maxBytes     bytes per period (0 with period 0: unlimited)
 * @param periodMillis length of a period in milliseconds
 */
public record RateLimit(long maxBytes, long periodMillis) {
    /** No limit. */
    public static final RateLimit NONE = new RateLimit(0, 0);

    public RateLimit {
        if (maxBytes < 0 || periodMillis < 0 || (maxBytes == 0) != (periodMillis == 0)) {
            throw new IllegalArgumentException("a rate limit needs a positive byte count and a positive period (or neither): "
                    + maxBytes + " bytes per " + periodMillis + " ms");
        }
        if (periodMillis > 3_600_000) {
            throw new IllegalArgumentException("period of " + periodMillis + " ms is over an hour");
        }
    }

    public boolean isUnlimited() {
        return periodMillis == 0;
    }
}
