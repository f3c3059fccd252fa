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

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            REQUESTS = l.findVarHandle(QueueStats.class, "requests", long.class);
            IN_FLIGHT = l.findVarHandle(QueueStats.class, "inFlight", int.class);
            RESTS = l.findVarHandle(QueueStats.class, "rests", long.class);
            BYTES = l.findVarHandle(QueueStats.class, "bytes", long.class);
            ERRORS = l.findVarHandle(QueueStats.class, "errors", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private long requests;
    private int inFlight;
    private long rests;
    private long bytes;
    private long errors;

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

    /** The device moved {@code n} bytes of guest data (read from or written to its backend). Queue thread only. */
    public void addBytes(long n) {
        BYTES.setOpaque(this, bytes + n);
    }

    /** The device answered a request with an error. Queue thread only. */
    public void addError() {
        ERRORS.setOpaque(this, errors + 1);
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
     * ({@code rests=R} too, once a queue rested).
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
        }
        return sb.toString();
    }
}
