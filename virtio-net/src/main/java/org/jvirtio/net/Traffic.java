package org.jvirtio.net;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Frames and bytes one queue of a port moved: written by that queue's thread alone (one writer at
 * a time: a queue pair's transmit or receive queue, which a restart replaces only after the old
 * one stopped), so counting a frame is two plain adds with opaque stores instead of two atomic
 * read-modify-writes; read from any thread ({@link SwitchPort} sums its cells).
 */
final class Traffic {
    private static final VarHandle FRAMES;
    private static final VarHandle BYTES;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            FRAMES = l.findVarHandle(Traffic.class, "frames", long.class);
            BYTES = l.findVarHandle(Traffic.class, "bytes", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused") // through FRAMES
    private long frames;
    @SuppressWarnings("unused") // through BYTES
    private long bytes;

    /** Counts {@code n} frames of {@code b} bytes in all; on the cell's one writing thread. */
    void add(long n, long b) {
        FRAMES.setOpaque(this, (long) FRAMES.getOpaque(this) + n);
        BYTES.setOpaque(this, (long) BYTES.getOpaque(this) + b);
    }

    long frames() {
        return (long) FRAMES.getOpaque(this);
    }

    long bytes() {
        return (long) BYTES.getOpaque(this);
    }
}
