package org.jvirtio.api.jfr;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/** A front-end (QEMU, a VMM) connected to a device's vhost-user socket. */
@Name("org.jvirtio.FrontendConnected")
@Label("Front-end connected")
@Category("jvirtio")
@StackTrace(false)
public final class FrontendConnectedEvent extends jdk.jfr.Event {
    @Label("Socket")
    @Description("The device's vhost-user socket")
    public String socket;

    /** Records the event if a recording wants it. */
    public static void emit(String socket) {
        FrontendConnectedEvent e = new FrontendConnectedEvent();
        if (e.shouldCommit()) {
            e.socket = socket;
            e.commit();
        }
    }
}
