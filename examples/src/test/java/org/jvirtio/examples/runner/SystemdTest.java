package org.jvirtio.examples.runner;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.jvirtio.testkit.NotifySocket;
import org.jvirtio.transport.vhostuser.VhostUserFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * systemd's protocols against the real runner process ({@code bin/vhost-user}'s main class):
 * listening sockets passed the systemd way (made by a small activator that binds them, puts them
 * at fds 3 and 4 with {@code LISTEN_FDS}, {@code LISTEN_PID} and {@code LISTEN_FDNAMES}, and
 * execs the backend, as systemd does), and a notify socket that must see {@code READY=1} only
 * when both sockets are served, then {@code STOPPING=1} on SIGTERM.
 */
class SystemdTest {
    @TempDir
    Path dir;

    private static final String ACTIVATOR = """
            import os, socket, sys
            # usage: activate.py SOCK... -- COMMAND...
            sep = sys.argv.index("--")
            paths, cmd = sys.argv[1:sep], sys.argv[sep + 1:]
            socks = []
            for p in paths:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.bind(p)
                s.listen(8)
                socks.append(s)
            high = [os.dup(s.fileno()) for s in socks]  # out of the way of 3, 4, ... first
            for s in socks:
                s.close()
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i)
                os.set_inheritable(3 + i, True)     # kept across exec, as systemd passes them
                os.close(fd)
            env = dict(os.environ)
            env["LISTEN_FDS"] = str(len(socks))
            env["LISTEN_PID"] = str(os.getpid())  # exec keeps the pid
            env["LISTEN_FDNAMES"] = ":".join(os.path.basename(p) for p in paths)
            print("ACTIVATOR: bound", flush=True)
            os.execvpe(cmd[0], cmd, env)
            """;

    private static boolean python() {
        return Files.isExecutable(Path.of("/usr/bin/python3"));
    }

    private Process start(List<String> sockets, Path notify, String... runnerArgs) throws Exception {
        Path script = dir.resolve("activate.py");
        Files.writeString(script, ACTIVATOR);
        List<String> cmd = new ArrayList<>(List.of("/usr/bin/python3", script.toString()));
        cmd.addAll(sockets);
        cmd.add("--");
        cmd.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), "org.jvirtio.runner.VhostUserRunner"));
        cmd.addAll(List.of(runnerArgs));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("backend.log").toFile());
        pb.environment().put("NOTIFY_SOCKET", notify.toString());
        return pb.start();
    }

    private static long inode(Path p) throws Exception {
        return ((Number) Files.getAttribute(p, "unix:ino", java.nio.file.LinkOption.NOFOLLOW_LINKS)).longValue();
    }

    @Test
    void socketsPassedBySystemdAreServedReadyComesWhenTheyAnswerAndStoppingOnSigterm() throws Exception {
        assumeTrue(python(), "/usr/bin/python3 is needed to pass sockets as systemd does");
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        try (NotifySocket notify = NotifySocket.bind(dir.resolve("notify"))) {
            Process p = start(List.of(a.toString(), b.toString()), notify.path(),
                    "rng", "--socket", a.toString(), "+", "rng", "--socket", b.toString());
            try {
                long deadline = System.nanoTime() + 30_000_000_000L;
                while (!Files.exists(b)) {
                    assertTrue(p.isAlive() && System.nanoTime() < deadline, "the activator did not bind: " + log());
                    Thread.sleep(10);
                }
                long inodeA = inode(a);
                long inodeB = inode(b);
                // A front-end that connects before the backend is up waits in the socket's backlog.
                VhostUserFrontend early = VhostUserFrontend.connect(a);
                String ready = notify.receive(30_000);
                assertNotNull(ready, "no notification within 30 s: " + log());
                assertTrue(ready.contains("READY=1"), ready);
                assertTrue(ready.contains("STATUS=serving 2 devices"), ready);
                // READY means served: both sockets answer now, the early one included.
                assertNotEquals(0, early.getFeatures());
                try (VhostUserFrontend fb = VhostUserFrontend.connect(b)) {
                    assertNotEquals(0, fb.getFeatures());
                }
                early.close();
                // The backend served systemd's sockets; it did not bind its own over them.
                assertEquals(inodeA, inode(a));
                assertEquals(inodeB, inode(b));
                assertTrue(log().contains("a socket passed by systemd"), log());
                p.destroy(); // SIGTERM
                String stopping = notify.receive(10_000);
                assertNotNull(stopping, "no STOPPING=1 after SIGTERM: " + log());
                assertTrue(stopping.contains("STOPPING=1"), stopping);
                assertTrue(p.waitFor(30, TimeUnit.SECONDS), "the backend did not stop");
                assertEquals(0, p.exitValue(), log());
                // The socket files are systemd's: left in place for the next start.
                assertTrue(Files.exists(a) && Files.exists(b));
            } finally {
                p.destroyForcibly();
            }
        }
    }

    /**
     * One process for many VMs under systemd, its devices added through the control socket: an
     * inherited socket no command-line device takes is kept (not closed at READY) and served by
     * the device added later on its path; a front-end that connected before the add is served.
     */
    @Test
    void withAControlSocketInheritedSocketsWaitForTheDevicesAddedOnTheirPaths() throws Exception {
        assumeTrue(python(), "/usr/bin/python3 is needed to pass sockets as systemd does");
        Path a = dir.resolve("vm1.sock");
        Path ctl = dir.resolve("ctl.sock");
        try (NotifySocket notify = NotifySocket.bind(dir.resolve("notify"))) {
            Process p = start(List.of(a.toString()), notify.path(), "--control", ctl.toString());
            try {
                String ready = notify.receive(30_000);
                assertNotNull(ready, "no notification within 30 s: " + log());
                assertTrue(ready.contains("READY=1") && ready.contains("STATUS=serving 0 devices"), ready);
                long inodeA = inode(a);
                VhostUserFrontend early = VhostUserFrontend.connect(a); // queued in systemd's socket's backlog
                var added = org.jvirtio.runner.ControlClient.request(ctl, "POST", "/devices",
                        new com.fasterxml.jackson.databind.ObjectMapper().readTree("{\"id\": \"vm1\", \"device\": \"rng\", \"flags\": [\"--socket\", \""
                                + a + "\"]}"), 30);
                assertEquals(201, added.status(), added.body());
                assertNotEquals(0, early.getFeatures(), "the early front-end is served by the added device");
                early.close();
                assertEquals(inodeA, inode(a), "systemd's socket, not one bound over it");
                assertTrue(log().contains("a socket passed by systemd"), log());
                assertFalse(log().contains("is no device's --socket; closed"), log());
                p.destroy();
                assertTrue(p.waitFor(30, TimeUnit.SECONDS), "the backend did not stop");
                assertTrue(Files.exists(a), "systemd's socket file is left for the next start");
            } finally {
                p.destroyForcibly();
            }
        }
    }

    /**
     * LISTEN_PID naming another process (a parent that did not clear it): the fds are not this
     * process's, the backend binds its own socket, and READY=1 still comes once it listens.
     */
    @Test
    void socketsMeantForAnotherProcessAreNotTaken() throws Exception {
        Path a = dir.resolve("own.sock");
        try (NotifySocket notify = NotifySocket.bind(dir.resolve("notify"))) {
            List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), "org.jvirtio.runner.VhostUserRunner",
                    "rng", "--socket", a.toString()));
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("backend.log").toFile());
            pb.environment().put("NOTIFY_SOCKET", notify.path().toString());
            pb.environment().put("LISTEN_PID", "1");
            pb.environment().put("LISTEN_FDS", "2");
            Process p = pb.start();
            try {
                String ready = notify.receive(30_000);
                assertNotNull(ready, "no READY=1: " + log());
                assertTrue(ready.contains("READY=1"), ready);
                try (VhostUserFrontend f = VhostUserFrontend.connect(a)) {
                    assertNotEquals(0, f.getFeatures());
                }
                assertFalse(log().contains("passed by systemd"), log());
                p.destroy();
                assertTrue(p.waitFor(30, TimeUnit.SECONDS));
                assertFalse(Files.exists(a), "its own socket is removed on stop");
            } finally {
                p.destroyForcibly();
            }
        }
    }

    private String log() throws Exception {
        Path l = dir.resolve("backend.log");
        return Files.exists(l) ? Files.readString(l) : "";
    }
}
