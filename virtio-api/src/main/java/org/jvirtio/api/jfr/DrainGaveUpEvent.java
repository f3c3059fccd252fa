package org.jvirtio.api.jfr;

import jdk.jfr.Category;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;
import jdk.jfr.Timespan;

/**
 * A queue stop waited its whole drain limit for requests in flight at the device (storage that
 * stalls) and handed the ring back without them.
 */
@Name("org.jvirtio.DrainGaveUp")
@Label("Queue drain gave up")
@Category("jvirtio")
@StackTrace(false)
public final class DrainGaveUpEvent extends jdk.jfr.Event {
    @Label("Queue")
    public int queue;

    @Label("Requests in flight")
    public int inFlight;

    @Label("Waited")
    @Timespan(Timespan.MILLISECONDS)
    public long waited;

    public static void emit(int queue, int inFlight, long waitedMillis) {
        DrainGaveUpEvent e = new DrainGaveUpEvent();
        if (e.shouldCommit()) {
            e.queue = queue;
            e.inFlight = inFlight;
            e.waited = waitedMillis;
            e.commit();
        }
    }
}
