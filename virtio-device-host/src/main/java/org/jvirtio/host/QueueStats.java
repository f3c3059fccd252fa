package org.jvirtio.host;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Counters of one queue that every device gets from the engine: chains taken from the ring,
 * chains in flight, and how often the device turned a chain away ({@code NOT_NOW}). Written by
 * the queue's thread only (opaque stores: no fence on the data path), read by anyone (the
 * runner's {@code --stats}). They survive the queue stopping and starting again, and the
 * front-end reconnecting.
 */
public final class QueueStats {
    private static final VarHandle REQUESTS;
    private static final VarHandle IN_FLIGHT;
    private static final VarHandle RESTS;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            REQUESTS = l.findVarHandle(QueueStats.class, "requests", long.class);
            IN_FLIGHT = l.findVarHandle(QueueStats.class, "inFlight", int.class);
            RESTS = l.findVarHandle(QueueStats.class, "rests", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private long requests;
    private int inFlight;
    private long rests;

    void addRequest() {
        REQUESTS.setOpaque(this, requests + 1);
    }

    void addRest() {
        RESTS.setOpaque(this, rests + 1);
    }

    void inFlight(int n) {
        IN_FLIGHT.setOpaque(this, n);
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

    /** One counter set per queue of a device with {@code queues} queues. */
    public static QueueStats[] forQueues(int queues) {
        QueueStats[] s = new QueueStats[queues];
        for (int i = 0; i < queues; i++) {
            s[i] = new QueueStats();
        }
        return s;
    }

    /** {@code "stats: q0 requests=N in-flight=M q1 ..."} for the runner's --stats ({@code rests=R} too, once a queue rested). */
    public static String describe(QueueStats[] stats) {
        StringBuilder sb = new StringBuilder("stats:");
        for (int q = 0; q < stats.length; q++) {
            sb.append(" q").append(q).append(" requests=").append(stats[q].requests()).append(" in-flight=").append(stats[q].inFlight());
            if (stats[q].rests() > 0) {
                sb.append(" rests=").append(stats[q].rests());
            }
        }
        return sb.toString();
    }
}
