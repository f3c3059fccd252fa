package org.jvirtio.api.jfr;

import jdk.jfr.Category;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/**
 * A device of the process started serving (from the command line or added through the control
 * socket) or stopped (removed, or the process stopping).
 */
@Name("org.jvirtio.DeviceLifecycle")
@Label("Device started or stopped")
@Category("jvirtio")
@StackTrace(false)
public final class DeviceLifecycleEvent extends jdk.jfr.Event {
    @Label("Id")
    public String id;

    @Label("Device")
    public String device;

    @Label("Socket")
    public String socket;

    @Label("What happened")
    public String what;

    /** @param what "started", "removed" or "stopped" */
    public static void emit(String id, String device, String socket, String what) {
        DeviceLifecycleEvent e = new DeviceLifecycleEvent();
        if (e.shouldCommit()) {
            e.id = id;
            e.device = device;
            e.socket = socket;
            e.what = what;
            e.commit();
        }
    }
}
