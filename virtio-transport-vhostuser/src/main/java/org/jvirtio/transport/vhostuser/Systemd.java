package org.jvirtio.transport.vhostuser;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.api.linux.Native;
import org.jvirtio.api.linux.Sys;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * systemd's two protocols for services, as sd_listen_fds(3) and sd_notify(3) define them,
 * without libsystemd:
 *
 * <ul>
 * <li>Socket activation: when {@code LISTEN_PID} is this process and {@code LISTEN_FDS} is N,
 * fds 3 to 3 + N - 1 are listening sockets systemd made (named by {@code LISTEN_FDNAMES}). Each
 * that is a listening AF_UNIX stream socket is offered by the path it is bound to; a backend
 * whose {@code --socket} is that path takes it ({@link #take}) instead of binding its own, and
 * leaves the socket file to systemd when it stops. So a restarted backend never leaves QEMU's
 * {@code reconnect=1} without a socket to connect to: systemd holds it meanwhile.</li>
 * <li>Notification: {@link #notify} sends {@code READY=1} (every socket listens),
 * {@code STOPPING=1} (on SIGTERM), {@code STATUS=...} as one datagram to {@code NOTIFY_SOCKET}
 * (a path, or an abstract name written with a leading {@code @}); nothing when it is unset.</li>
 * </ul>
 */
public final class Systemd {
    private static final Logger LOG = LoggerFactory.getLogger(Systemd.class);
    private static final int SD_LISTEN_FDS_START = 3;
    private static final int SOL_SOCKET = 1;
    private static final int SO_TYPE = 3;
    private static final int SO_ACCEPTCONN = 30;
    private static final int SO_DOMAIN = 39;
    private static final int SOCK_DGRAM = 2;
    private static final int F_SETFD = 2;
    private static final int F_GETFL = 3;
    private static final int F_SETFL = 4;
    private static final int FD_CLOEXEC = 1;
    private static final int O_NONBLOCK = 0x800;

    /** The inherited listening sockets not taken yet: path -> fd. */
    private final Map<Path, Integer> byPath;
    /** Inherited fds that are not listening AF_UNIX stream sockets (described, for a warning). */
    private final List<String> others;

    private Systemd(Map<Path, Integer> byPath, List<String> others) {
        this.byPath = byPath;
        this.others = others;
    }

    /** No inherited sockets. */
    public static Systemd none() {
        return new Systemd(new LinkedHashMap<>(), List.of());
    }

    /** The sockets this process inherited through socket activation (none when LISTEN_PID is not this process). */
    public static Systemd fromEnvironment() {
        return from(System.getenv(), ProcessHandle.current().pid());
    }

    /** As {@link #fromEnvironment()}, with the environment and pid given (tests). */
    static Systemd from(Map<String, String> env, long pid) {
        String listenPid = env.get("LISTEN_PID");
        String listenFds = env.get("LISTEN_FDS");
        if (listenPid == null || listenFds == null) {
            return none();
        }
        int n;
        try {
            if (Long.parseLong(listenPid.trim()) != pid) {
                return none(); // meant for another process (a parent that did not unset it)
            }
            n = Integer.parseInt(listenFds.trim());
        } catch (NumberFormatException e) {
            LOG.warn("systemd: LISTEN_PID={} LISTEN_FDS={} are not numbers; no inherited sockets used", listenPid, listenFds);
            return none();
        }
        if (n <= 0 || n > 4096) {
            return none();
        }
        String[] names = env.getOrDefault("LISTEN_FDNAMES", "").split(":", -1);
        Map<Path, Integer> byPath = new LinkedHashMap<>();
        List<String> others = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int fd = SD_LISTEN_FDS_START + i;
            String name = i < names.length && !names[i].isEmpty() ? names[i] : "unknown";
            try {
                Native.syscallOrThrow("fcntl(F_SETFD)", Sys.FCNTL, fd, F_SETFD, FD_CLOEXEC, 0, 0, 0); // as sd_listen_fds does
                Path path = listeningUnixPath(fd);
                if (path == null) {
                    others.add("fd " + fd + " (" + name + ")"); // not ours to change: its flags stay
                } else {
                    setNonBlocking(fd);
                    byPath.put(path.toAbsolutePath().normalize(), fd);
                    LOG.info("systemd: inherited listening socket {} as fd {} ({})", path, fd, name);
                }
            } catch (ErrnoException e) {
                others.add("fd " + fd + " (" + name + "): " + e.getMessage());
            }
        }
        return new Systemd(byPath, others);
    }

    /** O_NONBLOCK on a socket this process will accept on (the accept loop runs until EAGAIN). */
    private static void setNonBlocking(int fd) throws ErrnoException {
        long fl = Native.syscallOrThrow("fcntl(F_GETFL)", Sys.FCNTL, fd, F_GETFL, 0, 0, 0, 0);
        Native.syscallOrThrow("fcntl(F_SETFL)", Sys.FCNTL, fd, F_SETFL, fl | O_NONBLOCK, 0, 0, 0);
    }

    /** The path a listening AF_UNIX stream socket is bound to, or null for any other fd. */
    private static Path listeningUnixPath(int fd) throws ErrnoException {
        if (sockopt(fd, SO_DOMAIN) != UnixSocket.AF_UNIX || sockopt(fd, SO_TYPE) != UnixSocket.SOCK_STREAM || sockopt(fd, SO_ACCEPTCONN) != 1) {
            return null;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sa = a.allocate(110, 8);
            MemorySegment len = a.allocate(ValueLayout.JAVA_INT);
            len.set(ValueLayout.JAVA_INT, 0, 110);
            Native.syscallOrThrow("getsockname", Sys.GETSOCKNAME, fd, sa.address(), len.address(), 0, 0, 0);
            int l = len.get(ValueLayout.JAVA_INT, 0) - 2;
            if (l <= 0 || sa.get(ValueLayout.JAVA_BYTE, 2) == 0) {
                return null; // unnamed or abstract: no --socket can name it
            }
            byte[] p = new byte[l];
            MemorySegment.copy(sa, ValueLayout.JAVA_BYTE, 2, p, 0, l);
            int end = 0;
            while (end < p.length && p[end] != 0) {
                end++;
            }
            return Path.of(new String(p, 0, end, StandardCharsets.UTF_8));
        }
    }

    private static int sockopt(int fd, int option) throws ErrnoException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ValueLayout.JAVA_INT);
            MemorySegment len = a.allocate(ValueLayout.JAVA_INT);
            len.set(ValueLayout.JAVA_INT, 0, 4);
            Native.syscallOrThrow("getsockopt", Sys.GETSOCKOPT, fd, SOL_SOCKET, option, v.address(), len.address(), 0);
            return v.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** The inherited listening socket bound to {@code socketPath}, taken (-1 when there is none). */
    public synchronized int take(Path socketPath) {
        Integer fd = byPath.remove(socketPath.toAbsolutePath().normalize());
        return fd == null ? -1 : fd;
    }

    /** Whether any inherited socket waits to be taken. */
    public synchronized boolean any() {
        return !byPath.isEmpty();
    }

    /**
     * Closes the inherited fds no device took, saying which: a socket unit that lists a path no
     * {@code --socket} names is a configuration mistake worth a line.
     */
    public synchronized void closeUnused() {
        for (var e : byPath.entrySet()) {
            LOG.warn("systemd: inherited socket {} (fd {}) is no device's --socket; closed", e.getKey(), e.getValue());
            Libc.closeQuietly(e.getValue());
        }
        byPath.clear();
        for (String o : others) {
            LOG.warn("systemd: inherited {} is not a listening unix stream socket; left alone", o);
        }
    }

    /**
     * Sends {@code state} (such as {@code READY=1}) to systemd's {@code NOTIFY_SOCKET}; false when
     * it is unset. A failure to send is logged, never thrown: the service goes on.
     */
    public static boolean notify(String state) {
        return notify(System.getenv("NOTIFY_SOCKET"), state);
    }

    static boolean notify(String socket, String state) {
        if (socket == null || socket.isEmpty()) {
            return false;
        }
        byte[] path = socket.getBytes(StandardCharsets.UTF_8);
        if (path[0] == '@') {
            path[0] = 0; // abstract namespace
        } else if (path[0] != '/') {
            LOG.warn("systemd: NOTIFY_SOCKET={} is neither a path nor an abstract name; not notified", socket);
            return false;
        }
        if (path.length > UnixSocket.SUN_PATH_MAX) {
            LOG.warn("systemd: NOTIFY_SOCKET={} is too long; not notified", socket);
            return false;
        }
        byte[] msg = state.getBytes(StandardCharsets.UTF_8);
        int fd = -1;
        try (Arena a = Arena.ofConfined()) {
            fd = (int) Native.syscallOrThrow("socket(AF_UNIX, SOCK_DGRAM)", Sys.SOCKET, UnixSocket.AF_UNIX,
                    SOCK_DGRAM | UnixSocket.SOCK_CLOEXEC, 0, 0, 0, 0);
            MemorySegment sa = a.allocate(110, 8);
            sa.set(ValueLayout.JAVA_SHORT, 0, (short) UnixSocket.AF_UNIX);
            MemorySegment.copy(path, 0, sa, ValueLayout.JAVA_BYTE, 2, path.length);
            MemorySegment buf = a.allocateFrom(ValueLayout.JAVA_BYTE, msg);
            Native.syscallOrThrow("sendto(" + socket + ")", Sys.SENDTO, fd, buf.address(), msg.length, Libc.MSG_NOSIGNAL,
                    sa.address(), 2 + path.length);
            return true;
        } catch (ErrnoException e) {
            LOG.warn("systemd: notifying {} of {} failed: {}", socket, state.replace('\n', ' '), e.getMessage());
            return false;
        } finally {
            if (fd >= 0) {
                Libc.closeQuietly(fd);
            }
        }
    }
}
