package org.jvirtio.api.jfr;

import jdk.jfr.Category;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/** A queue broke (a ring violation, memory that faulted): the device set DEVICE_NEEDS_RESET. */
@Name("org.jvirtio.DeviceNeedsReset")
@Label("Device needs reset")
@Category("jvirtio")
@StackTrace(false)
public final class DeviceNeedsResetEvent extends jdk.jfr.Event {
    @Label("Queue")
    public int queue;

    @Label("Reason")
    public String reason;

    public static void emit(int queue, String reason) {
        DeviceNeedsResetEvent e = new DeviceNeedsResetEvent();
        if (e.shouldCommit()) {
            e.queue = queue;
            e.reason = reason;
            e.commit();
        }
    }
}
