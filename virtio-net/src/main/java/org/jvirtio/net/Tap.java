package org.jvirtio.net;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.api.linux.Native;
import org.jvirtio.api.linux.Sys;

/**
 * A host tap device opened through the project's FFM calls: {@code /dev/net/tun} with
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a 12-byte virtio-net header (TUNSETVNETHDRSZ: VERSION_1's,
 * with num_buffers) and the offloads the switch takes from the host (TUNSETOFFLOAD: partial
 * checksums and TSO, which it passes on or finishes per port). Frames are read and written with
 * their header in front; the fd is non-blocking.
 */
final class Tap implements AutoCloseable {
    static final long TUNSETIFF = 0x400454caL;
    static final long TUNSETOFFLOAD = 0x400454d0L;
    static final long TUNSETVNETHDRSZ = 0x400454d8L;
    static final int IFF_TAP = 0x0002;
    static final int IFF_NO_PI = 0x1000;
    static final int IFF_VNET_HDR = 0x4000;
    static final int TUN_F_CSUM = 0x01;
    static final int TUN_F_TSO4 = 0x02;
    static final int TUN_F_TSO6 = 0x04;
    static final int O_RDWR = 2;
    static final int O_CLOEXEC = 0x80000;

    private final int fd;
    private final String name;

    private Tap(int fd, String name) {
        this.fd = fd;
        this.name = name;
    }

    /** Opens (or creates) tap {@code name}. */
    static Tap open(String name) throws ErrnoException {
        if (name.isEmpty() || name.length() > 15 || name.contains("/") || name.contains(" ")) {
            throw new IllegalArgumentException("a tap name is 1 to 15 characters without / or spaces, not '" + name + "'");
        }
        int fd = Libc.open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ifr = arena.allocate(40);
            byte[] n = name.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            MemorySegment.copy(n, 0, ifr, ValueLayout.JAVA_BYTE, 0, n.length);
            ifr.set(ValueLayout.JAVA_SHORT, 16, (short) (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR));
            Native.syscallOrThrow("ioctl(TUNSETIFF " + name + ")", Sys.IOCTL, fd, TUNSETIFF, ifr.address(), 0, 0, 0);
            MemorySegment size = arena.allocate(ValueLayout.JAVA_INT);
            size.set(ValueLayout.JAVA_INT, 0, VirtioNet.HDR_SIZE);
            Native.syscallOrThrow("ioctl(TUNSETVNETHDRSZ)", Sys.IOCTL, fd, TUNSETVNETHDRSZ, size.address(), 0, 0, 0);
            Native.syscallOrThrow("ioctl(TUNSETOFFLOAD)", Sys.IOCTL, fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, 0, 0, 0);
            Libc.setNonBlocking(fd);
            return new Tap(fd, name);
        } catch (ErrnoException | RuntimeException e) {
            Libc.closeQuietly(fd);
            throw e;
        }
    }

    int fd() {
        return fd;
    }

    String name() {
        return name;
    }

    /** Reads one frame (header first) into {@code buf}; its length, 0 when none waits, or -errno. */
    long read(MemorySegment state, MemorySegment buf) {
        long r = Native.syscall(state, Sys.READ, fd, buf.address(), buf.byteSize(), 0, 0, 0);
        if (r >= 0) {
            return r;
        }
        int e = Native.errno(state);
        return e == org.jvirtio.api.linux.Errno.EAGAIN ? 0 : -e;
    }

    /** Writes one frame gathered from {@code iov} ({@code count} iovecs); bytes written, or -errno. */
    long writev(MemorySegment state, MemorySegment iov, int count) {
        long r = Native.syscall(state, Sys.WRITEV, fd, iov.address(), count, 0, 0, 0);
        return r >= 0 ? r : -Native.errno(state);
    }

    @Override
    public void close() {
        Libc.closeQuietly(fd);
    }

    @Override
    public String toString() {
        return "tap " + name;
    }
}
