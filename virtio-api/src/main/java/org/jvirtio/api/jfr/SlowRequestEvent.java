package org.jvirtio.api.jfr;

import jdk.jfr.Category;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;
import jdk.jfr.Timespan;

/**
 * A request took longer than the slow-request threshold from being taken from the ring to being
 * completed ({@code -Djvirtio.slow_request_ms}, 1000 by default): storage that stalls, a device
 * that waits too long. Emitted on the queue's thread as the request completes; the check costs a
 * comparison per request, the event itself only a slow one.
 */
@Name("org.jvirtio.SlowRequest")
@Label("Slow request")
@Category("jvirtio")
@StackTrace(false)
public final class SlowRequestEvent extends jdk.jfr.Event {
    /** The threshold, from {@code -Djvirtio.slow_request_ms} (1000 ms by default; at least 1). */
    public static final long THRESHOLD_NANOS = Math.max(1, Long.getLong("jvirtio.slow_request_ms", 1000)) * 1_000_000L;

    @Label("Queue")
    public int queue;

    @Label("Descriptor chain head")
    public int head;

    @Label("Latency")
    @Timespan(Timespan.NANOSECONDS)
    public long latency;

    public static void emit(int queue, int head, long latencyNanos) {
        SlowRequestEvent e = new SlowRequestEvent();
        if (e.shouldCommit()) {
            e.queue = queue;
            e.head = head;
            e.latency = latencyNanos;
            e.commit();
        }
    }
}
