package org.jvirtio.testkit;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.api.linux.Native;
import org.jvirtio.api.linux.Sys;

/**
 * The receiving end of systemd's notification protocol for tests: an AF_UNIX datagram socket
 * bound to a path, as systemd's {@code NOTIFY_SOCKET}; {@link #receive} returns one datagram.
 */
public final class NotifySocket implements AutoCloseable {
    private final int fd;
    private final Path path;

    private NotifySocket(int fd, Path path) {
        this.fd = fd;
        this.path = path;
    }

    public static NotifySocket bind(Path path) throws IOException {
        byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
        if (p.length > 107) {
            throw new IOException("path too long for a socket: " + path);
        }
        int fd = (int) Native.syscallOrThrow("socket", Sys.SOCKET, 1 /* AF_UNIX */, 2 /* SOCK_DGRAM */ | 0x80000 /* CLOEXEC */, 0, 0, 0, 0);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sa = a.allocate(110, 8);
            sa.set(ValueLayout.JAVA_SHORT, 0, (short) 1);
            MemorySegment.copy(p, 0, sa, ValueLayout.JAVA_BYTE, 2, p.length);
            Native.syscallOrThrow("bind(" + path + ")", Sys.BIND, fd, sa.address(), 110, 0, 0, 0);
        } catch (IOException | RuntimeException e) {
            Libc.closeQuietly(fd);
            throw e;
        }
        return new NotifySocket(fd, path);
    }

    public Path path() {
        return path;
    }

    /** The next datagram, or null when none came within {@code millis}. */
    public String receive(int millis) throws ErrnoException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pfd = a.allocate(8, 4);
            pfd.set(ValueLayout.JAVA_INT, 0, fd);
            pfd.set(ValueLayout.JAVA_SHORT, 4, (short) Libc.POLLIN);
            if (Libc.poll(pfd, 1, millis) <= 0) {
                return null;
            }
            MemorySegment buf = a.allocate(4096);
            long n = Native.syscallOrThrow("read", Sys.READ, fd, buf.address(), 4096, 0, 0, 0);
            byte[] b = new byte[(int) n];
            MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, b, 0, (int) n);
            return new String(b, StandardCharsets.UTF_8);
        }
    }

    @Override
    public void close() throws IOException {
        Libc.closeQuietly(fd);
        Files.deleteIfExists(path);
    }
}
