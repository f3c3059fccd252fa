package org.jvirtio.transport.vhostuser;

import java.nio.file.Path;
import java.util.Map;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Socket activation's environment as a broken or hostile parent may set it: nothing is taken and
 * no fd of this process is touched unless LISTEN_PID is this process and LISTEN_FDS a sane count
 * (the real fds are tested with the runner process in examples' SystemdTest). A notify socket
 * that is neither a path nor an abstract name, or too long, is not written to.
 */
class SystemdEnvironmentTest {
    private static final long ME = ProcessHandle.current().pid();

    @Test
    void environmentsThatDoNotPassSocketsToThisProcessAreIgnored() {
        Map<?, ?>[] envs = {
            Map.of(),
            Map.of("LISTEN_FDS", "2"),
            Map.of("LISTEN_PID", Long.toString(ME)),
            Map.of("LISTEN_PID", "1", "LISTEN_FDS", "2"),
            Map.of("LISTEN_PID", "not-a-pid", "LISTEN_FDS", "2"),
            Map.of("LISTEN_PID", Long.toString(ME), "LISTEN_FDS", "two"),
            Map.of("LISTEN_PID", Long.toString(ME), "LISTEN_FDS", "0"),
            Map.of("LISTEN_PID", Long.toString(ME), "LISTEN_FDS", "-3"),
            Map.of("LISTEN_PID", Long.toString(ME), "LISTEN_FDS", "99999"),
            Map.of("LISTEN_PID", Long.toString(ME), "LISTEN_FDS", "99999999999999999999"),
        };
        for (Map<?, ?> env : envs) {
            @SuppressWarnings("unchecked")
            Systemd s = Systemd.from((Map<String, String>) env, ME);
            assertFalse(s.any(), env.toString());
            assertEquals(-1, s.take(Path.of("/run/x.sock")), env.toString());
        }
    }

    @Test
    void badNotifySocketsAreNotWrittenTo() {
        assertFalse(Systemd.notify(null, "READY=1"));
        assertFalse(Systemd.notify("", "READY=1"));
        assertFalse(Systemd.notify("relative/notify", "READY=1"));
        assertFalse(Systemd.notify("/" + "x".repeat(200), "READY=1"));
        assertFalse(Systemd.notify("/nonexistent-dir/notify", "READY=1"), "a send that fails is logged, not thrown");
    }
}
