package org.jvirtio.api.jfr;

import jdk.jfr.Category;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/** A front-end's connection ended: it went away, or the backend closed it (and why). */
@Name("org.jvirtio.FrontendDisconnected")
@Label("Front-end disconnected")
@Category("jvirtio")
@StackTrace(false)
public final class FrontendDisconnectedEvent extends jdk.jfr.Event {
    @Label("Socket")
    public String socket;

    @Label("Reason")
    public String reason;

    public static void emit(String socket, String reason) {
        FrontendDisconnectedEvent e = new FrontendDisconnectedEvent();
        if (e.shouldCommit()) {
            e.socket = socket;
            e.reason = reason;
            e.commit();
        }
    }
}
