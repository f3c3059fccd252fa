package org.jvirtio.api;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * The counters of one queue, one record for the engine and the device: chains taken from the ring,
 * chains in flight and how often the device turned a chain away ({@code NOT_NOW}), which the queue
 * engine keeps, and bytes moved and requests that failed, which the device adds
 * ({@link #addBytes}, {@link #addError}) through {@link QueueBinding#stats()}. Written by the
 * queue's thread only (opaque stores: no fence on the data path), read by anyone (the runner's
 * {@code --stats}). They survive the queue stopping and starting again, and the front-end
 * reconnecting.
 */
public final class QueueStats {
    private static final VarHandle REQUESTS;
    private static final VarHandle IN_FLIGHT;
    private static final VarHandle RESTS;
    private static final VarHandle BYTES;
    private static final VarHandle ERRORS;
    private static final VarHandle BYTES_TO_GUEST;
    private static final VarHandle WAKEUPS;
    private static final VarHandle POLL_HITS;
    private static final VarHandle VIOLATIONS;
    private static final VarHandle RESUBMITTED;
    private static final VarHandle LATENCY_SUM;
    private static final VarHandle BUCKET = MethodHandles.arrayElementVarHandle(long[].class);

    /**
     * Buckets of the request latency histogram: bucket i counts requests that took at most
     * 2^i microseconds (1 us, 2 us, ... 2^22 us = 4.2 s); the last one, {@code BUCKETS - 1},
     * those that took longer.
     */
    public static final int BUCKETS = 24;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            REQUESTS = l.findVarHandle(QueueStats.class, "requests", long.class);
            IN_FLIGHT = l.findVarHandle(QueueStats.class, "inFlight", int.class);
            RESTS = l.findVarHandle(QueueStats.class, "rests", long.class);
            BYTES = l.findVarHandle(QueueStats.class, "bytes", long.class);
            ERRORS = l.findVarHandle(QueueStats.class, "errors", long.class);
            BYTES_TO_GUEST = l.findVarHandle(QueueStats.class, "bytesToGuest", long.class);
            WAKEUPS = l.findVarHandle(QueueStats.class, "wakeups", long.class);
            POLL_HITS = l.findVarHandle(QueueStats.class, "pollHits", long.class);
            VIOLATIONS = l.findVarHandle(QueueStats.class, "violations", long.class);
            RESUBMITTED = l.findVarHandle(QueueStats.class, "resubmitted", long.class);
            LATENCY_SUM = l.findVarHandle(QueueStats.class, "latencySumNanos", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private long requests;
    private int inFlight;
    private long rests;
    private long bytes;
    private long errors;
    private long bytesToGuest;
    private final long[] errorsByKind = new long[ErrorKind.values().length];
    private long wakeups;
    private long pollHits;
    private long violations;
    private long resubmitted;
    private long latencySumNanos;
    /** Non-cumulative: requests whose latency fell in each bucket. */
    private final long[] latency = new long[BUCKETS];

    /** The engine took a chain from the ring. Queue thread only. */
    public void addRequest() {
        REQUESTS.setOpaque(this, requests + 1);
    }

    /** The device turned a chain away. Queue thread only. */
    public void addRest() {
        RESTS.setOpaque(this, rests + 1);
    }

    /** Chains in flight now (the engine's count). Queue thread only. */
    public void inFlight(int n) {
        IN_FLIGHT.setOpaque(this, n);
    }

    /** Why a request failed, for the operator: the kinds of {@link #addError(ErrorKind)}. */
    public enum ErrorKind {
        /** The backend failed it (storage's I/O error: blk's IOERR). */
        IO,
        /** A request the device does not support (blk's UNSUPP). */
        UNSUPPORTED,
        /** A chain the device cannot use (no status byte, a header that is not one). */
        MALFORMED,
        /** Dropped by the device's policy or for want of room (a switch's drops). */
        DROPPED;

        /** The name in metrics and stats: {@code io}, {@code unsupported}, ... */
        public String label() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /**
     * The device moved {@code n} bytes of guest data (read from or written to its backend), in
     * a direction it does not say. Queue thread only.
     */
    public void addBytes(long n) {
        BYTES.setOpaque(this, bytes + n);
    }

    /**
     * The device moved {@code n} bytes of guest data: into guest memory ({@code toGuest}: a disk
     * read, a received frame, entropy) or out of it (a disk write, a sent frame). Queue thread only.
     */
    public void addBytes(long n, boolean toGuest) {
        BYTES.setOpaque(this, bytes + n);
        if (toGuest) {
            BYTES_TO_GUEST.setOpaque(this, bytesToGuest + n);
        }
    }

    /** The device answered a request with an error (of kind {@link ErrorKind#IO}). Queue thread only. */
    public void addError() {
        addError(ErrorKind.IO);
    }

    /** The device answered a request with an error of {@code kind}. Queue thread only. */
    public void addError(ErrorKind kind) {
        ERRORS.setOpaque(this, errors + 1);
        int k = kind.ordinal();
        BUCKET.setOpaque(errorsByKind, k, errorsByKind[k] + 1);
    }

    /** Bytes the device wrote into guest memory (part of {@link #bytes()}). */
    public long bytesToGuest() {
        return (long) BYTES_TO_GUEST.getOpaque(this);
    }

    /** Requests answered with an error of {@code kind}. */
    public long errors(ErrorKind kind) {
        return (long) BUCKET.getOpaque(errorsByKind, kind.ordinal());
    }

    /** The queue's thread woke to serve it (a kick, a resume, another turn after its budget). Queue thread only. */
    public void addWakeup() {
        WAKEUPS.setOpaque(this, wakeups + 1);
    }

    /** Busy-polling found chains before the queue went to sleep. Queue thread only. */
    public void addPollHit() {
        POLL_HITS.setOpaque(this, pollHits + 1);
    }

    /** The driver broke the ring (a {@code RingViolation}: the device then needs a reset). Any thread; rare. */
    public synchronized void addViolation() {
        VIOLATIONS.setOpaque(this, violations + 1);
    }

    /** A restarted backend resubmitted {@code n} requests a previous one left in flight. Any thread; rare. */
    public synchronized void addResubmitted(long n) {
        RESUBMITTED.setOpaque(this, resubmitted + n);
    }

    /**
     * A request took {@code nanos} from being taken from the ring to being completed (measured
     * by the batch: the clock is read once per batch taken and once per batch of completions).
     * Queue thread only; two opaque stores, no allocation.
     */
    public void addLatency(long nanos) {
        long n = Math.max(0, nanos);
        int b = bucketOf(n);
        BUCKET.setOpaque(latency, b, latency[b] + 1);
        LATENCY_SUM.setOpaque(this, latencySumNanos + n);
    }

    /** The bucket of a latency of {@code nanos}: the first i with nanos <= 2^i us (1,024 ns taken as a microsecond: a power of two). */
    public static int bucketOf(long nanos) {
        long micros = (nanos + 1023) >>> 10;
        int i = micros <= 1 ? 0 : 64 - Long.numberOfLeadingZeros(micros - 1);
        return Math.min(i, BUCKETS - 1);
    }

    /** The upper bound of bucket {@code i} in seconds ({@code +Inf} for the last). */
    public static double bucketBoundSeconds(int i) {
        return i >= BUCKETS - 1 ? Double.POSITIVE_INFINITY : (1024.0 * (1L << i)) / 1e9;
    }

    /** Requests whose latency fell in bucket {@code i} (not cumulative). */
    public long latencyBucket(int i) {
        return (long) BUCKET.getOpaque(latency, i);
    }

    /** The sum of the latencies counted, in nanoseconds. */
    public long latencySumNanos() {
        return (long) LATENCY_SUM.getOpaque(this);
    }

    /**
     * An estimate of the {@code q} quantile (0..1) of the latencies counted, in nanoseconds: the
     * upper bound of the bucket it falls in (at most a factor of 2 above it); -1 when none.
     */
    public long latencyQuantileNanos(double q) {
        long total = 0;
        long[] b = new long[BUCKETS];
        for (int i = 0; i < BUCKETS; i++) {
            b[i] = latencyBucket(i);
            total += b[i];
        }
        if (total == 0) {
            return -1;
        }
        long rank = (long) Math.ceil(q * total);
        long seen = 0;
        for (int i = 0; i < BUCKETS; i++) {
            seen += b[i];
            if (seen >= Math.max(1, rank)) {
                return i >= BUCKETS - 1 ? Long.MAX_VALUE : 1024L << i;
            }
        }
        return Long.MAX_VALUE;
    }

    /** Times the queue's thread woke to serve it. */
    public long wakeups() {
        return (long) WAKEUPS.getOpaque(this);
    }

    /** Times busy-polling found chains. */
    public long pollHits() {
        return (long) POLL_HITS.getOpaque(this);
    }

    /** Ring violations the driver committed on this queue. */
    public long violations() {
        return (long) VIOLATIONS.getOpaque(this);
    }

    /** Requests resubmitted after a backend restart. */
    public long resubmitted() {
        return (long) RESUBMITTED.getOpaque(this);
    }

    /** Chains taken from the ring. */
    public long requests() {
        return (long) REQUESTS.getOpaque(this);
    }

    /** Times the device turned a chain away ({@code QueueHandler.NOT_NOW}) and the queue rested. */
    public long rests() {
        return (long) RESTS.getOpaque(this);
    }

    /** Chains taken and not yet returned to the driver. */
    public int inFlight() {
        return (int) IN_FLIGHT.getOpaque(this);
    }

    /** Bytes of guest data the device moved. */
    public long bytes() {
        return (long) BYTES.getOpaque(this);
    }

    /** Requests the device answered with an error. */
    public long errors() {
        return (long) ERRORS.getOpaque(this);
    }

    /** One counter set per queue of a device with {@code queues} queues. */
    public static QueueStats[] forQueues(int queues) {
        QueueStats[] s = new QueueStats[queues];
        for (int i = 0; i < queues; i++) {
            s[i] = new QueueStats();
        }
        return s;
    }

    /**
     * {@code "stats: q0 requests=N bytes=B errors=E in-flight=M q1 ..."} for the runner's --stats
     * ({@code rests=R}, {@code violations=V} and {@code resubmitted=S} too, once there are any).
     */
    public static String describe(QueueStats[] stats) {
        StringBuilder sb = new StringBuilder("stats:");
        for (int q = 0; q < stats.length; q++) {
            QueueStats s = stats[q];
            sb.append(" q").append(q).append(" requests=").append(s.requests()).append(" bytes=").append(s.bytes())
                    .append(" errors=").append(s.errors()).append(" in-flight=").append(s.inFlight());
            if (s.rests() > 0) {
                sb.append(" rests=").append(s.rests());
            }
            if (s.violations() > 0) {
                sb.append(" violations=").append(s.violations());
            }
            if (s.resubmitted() > 0) {
                sb.append(" resubmitted=").append(s.resubmitted());
            }
        }
        return sb.toString();
    }
}
