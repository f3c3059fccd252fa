package org.jvirtio.blk;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Counters of one queue, written by the queue's thread only (opaque stores: no fence on the
 * data path), read by anyone (e.g. --stats).
 */
public final class BlkQueueStats {
    private static final VarHandle REQUESTS;
    private static final VarHandle BYTES;
    private static final VarHandle ERRORS;
    private static final VarHandle IN_FLIGHT;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            REQUESTS = l.findVarHandle(BlkQueueStats.class, "requests", long.class);
            BYTES = l.findVarHandle(BlkQueueStats.class, "bytes", long.class);
            ERRORS = l.findVarHandle(BlkQueueStats.class, "errors", long.class);
            IN_FLIGHT = l.findVarHandle(BlkQueueStats.class, "inFlight", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private long requests;
    private long bytes;
    private long errors;
    private int inFlight;

    void addRequest() {
        REQUESTS.setOpaque(this, requests + 1);
    }

    void addBytes(long n) {
        BYTES.setOpaque(this, bytes + n);
    }

    void addError() {
        ERRORS.setOpaque(this, errors + 1);
    }

    void inFlight(int n) {
        IN_FLIGHT.setOpaque(this, n);
    }

    public long requests() {
        return (long) REQUESTS.getOpaque(this);
    }

    public long bytes() {
        return (long) BYTES.getOpaque(this);
    }

    public long errors() {
        return (long) ERRORS.getOpaque(this);
    }

    /** Requests started and not yet completed. */
    public int inFlight() {
        return (int) IN_FLIGHT.getOpaque(this);
    }
}
