package org.jvirtio.api;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The latency histogram's buckets (powers of two of a 1,024 ns microsecond) and its quantile estimate. */
class QueueStatsTest {
    @Test
    void aLatencyFallsInTheFirstBucketWhoseBoundIsAtLeastIt() {
        assertEquals(0, QueueStats.bucketOf(0));
        assertEquals(0, QueueStats.bucketOf(1024));
        assertEquals(1, QueueStats.bucketOf(1025));
        assertEquals(1, QueueStats.bucketOf(2048));
        assertEquals(2, QueueStats.bucketOf(2049));
        assertEquals(QueueStats.BUCKETS - 2, QueueStats.bucketOf(1024L << (QueueStats.BUCKETS - 2)));
        assertEquals(QueueStats.BUCKETS - 1, QueueStats.bucketOf((1024L << (QueueStats.BUCKETS - 2)) + 1));
        assertEquals(QueueStats.BUCKETS - 1, QueueStats.bucketOf(Long.MAX_VALUE));
        for (long n = 1; n < 1L << 40; n = n * 3 + 7) {
            int b = QueueStats.bucketOf(n);
            assertTrue(n <= QueueStats.bucketBoundSeconds(b) * 1e9 + 1e-3, n + " above bucket " + b);
            assertTrue(b == 0 || n > QueueStats.bucketBoundSeconds(b - 1) * 1e9, n + " fits bucket " + (b - 1));
        }
        assertEquals(Double.POSITIVE_INFINITY, QueueStats.bucketBoundSeconds(QueueStats.BUCKETS - 1));
    }

    @Test
    void theQuantileIsTheBoundOfItsBucketAndNegativeLatenciesCountAsZero() {
        QueueStats s = new QueueStats();
        assertEquals(-1, s.latencyQuantileNanos(0.5));
        for (int i = 0; i < 98; i++) {
            s.addLatency(1_500); // bucket 1 (2,048 ns)
        }
        s.addLatency(5_000_000);
        s.addLatency(-7); // a clock that went back: counted as 0
        assertEquals(2048, s.latencyQuantileNanos(0.5));
        assertEquals(2048, s.latencyQuantileNanos(0.98));
        assertEquals(1024L << QueueStats.bucketOf(5_000_000), s.latencyQuantileNanos(1.0));
        assertEquals(1, s.latencyBucket(0));
        assertEquals(98 * 1_500L + 5_000_000, s.latencySumNanos());
    }

    @Test
    void errorsCountByKindAndBytesByDirection() {
        QueueStats s = new QueueStats();
        s.addError(QueueStats.ErrorKind.UNSUPPORTED);
        s.addError(QueueStats.ErrorKind.UNSUPPORTED);
        s.addError(); // IO, as devices written before the kinds say it
        s.addError(QueueStats.ErrorKind.DROPPED);
        assertEquals(4, s.errors());
        assertEquals(2, s.errors(QueueStats.ErrorKind.UNSUPPORTED));
        assertEquals(1, s.errors(QueueStats.ErrorKind.IO));
        assertEquals(0, s.errors(QueueStats.ErrorKind.MALFORMED));
        assertEquals(1, s.errors(QueueStats.ErrorKind.DROPPED));
        assertEquals("unsupported", QueueStats.ErrorKind.UNSUPPORTED.label());
        s.addBytes(4096, true);
        s.addBytes(512, false);
        s.addBytes(7); // no direction said
        assertEquals(4096 + 512 + 7, s.bytes());
        assertEquals(4096, s.bytesToGuest());
    }

    @Test
    void theStatsLineNamesViolationsAndResubmissionsOnceThereAreAny() {
        QueueStats a = new QueueStats();
        QueueStats b = new QueueStats();
        assertEquals("stats: q0 requests=0 bytes=0 errors=0 in-flight=0 q1 requests=0 bytes=0 errors=0 in-flight=0",
                QueueStats.describe(new QueueStats[] {a, b}));
        b.addViolation();
        b.addResubmitted(3);
        assertEquals("stats: q0 requests=0 bytes=0 errors=0 in-flight=0 q1 requests=0 bytes=0 errors=0 in-flight=0 violations=1 resubmitted=3",
                QueueStats.describe(new QueueStats[] {a, b}));
    }
}
