package org.jvirtio.transport.vhostuser;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.api.linux.Native;
import org.jvirtio.api.linux.Sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import static org.jvirtio.api.linux.Errno.*;
import static org.jvirtio.api.linux.Libc.*;

/**
 * AF_UNIX stream sockets through FFM, with file descriptors passed by SCM_RIGHTS in the same
 * {@code sendmsg}/{@code recvmsg} as the bytes they belong to (which Netty's domain socket
 * channel cannot do). x86-64 / aarch64 Linux layouts:
 *
 * <pre>
 * struct msghdr  (56 bytes): +0 name, +8 namelen, +16 iov, +24 iovlen, +32 control, +40 controllen, +48 flags
 * struct iovec   (16 bytes): +0 base, +8 len
 * struct cmsghdr (16 bytes + data): +0 len (size_t), +8 level, +12 type, +16 data
 * struct sockaddr_un (110 bytes): +0 family (u16), +2 path[108]
 * </pre>
 */
final class UnixSocket {
    static final int AF_UNIX = 1;
    static final int SOCK_STREAM = 1;
    static final int SOCK_CLOEXEC = 0x80000;
    /** Most fds one message may carry (8 regions in SET_MEM_TABLE); a few more to detect excess. */
    static final int MAX_FDS = 16;
    static final int SUN_PATH_MAX = 107;

    private UnixSocket() {
    }

    private static int errno(MemorySegment state) {
        return Native.errno(state);
    }

    private static RuntimeException rethrow(Throwable t) {
        return Native.unexpected(t);
    }

    /** Closes the socket {@code fd} a call failed on and rethrows what it failed with. */
    private static RuntimeException closing(int fd, Throwable t) throws ErrnoException {
        closeQuietly(fd);
        if (t instanceof ErrnoException e) {
            throw e;
        }
        throw rethrow(t);
    }

    private static MemorySegment sockaddr(Arena arena, Path path) {
        byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
        if (p.length > SUN_PATH_MAX) {
            throw new IllegalArgumentException("socket path longer than " + SUN_PATH_MAX + " bytes: " + path);
        }
        MemorySegment sa = arena.allocate(110, 8);
        sa.set(java.lang.foreign.ValueLayout.JAVA_SHORT, 0, (short) AF_UNIX);
        MemorySegment.copy(p, 0, sa, java.lang.foreign.ValueLayout.JAVA_BYTE, 2, p.length);
        return sa;
    }

    static final int SOCK_NONBLOCK = 0x800;

    static int socket(boolean nonBlocking) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = Native.errnoState(arena);
            int fd = (int) Native.syscall(st, Sys.SOCKET, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0), 0, 0, 0, 0);
            if (fd < 0) {
                throw new ErrnoException("socket", errno(st));
            }
            return fd;
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A non-blocking listening socket bound to {@code path} (which must not exist). */
    static int listen(Path path, int backlog) throws ErrnoException {
        int fd = socket(true);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = Native.errnoState(arena);
            MemorySegment sa = sockaddr(arena, path);
            if (Native.syscall(st, Sys.BIND, fd, sa.address(), 110, 0, 0, 0) != 0) {
                throw new ErrnoException("bind(" + path + ")", errno(st));
            }
            if (Native.syscall(st, Sys.LISTEN, fd, backlog, 0, 0, 0, 0) != 0) {
                throw new ErrnoException("listen", errno(st));
            }
            return fd;
        } catch (Throwable t) {
            throw closing(fd, t);
        }
    }

    /** {@code accept4(fd, NULL, NULL, SOCK_CLOEXEC)}; -1 when nothing is pending (EAGAIN). */
    static int accept(int listenFd) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = Native.errnoState(arena);
            while (true) {
                int fd = (int) Native.syscall(st, Sys.ACCEPT4, listenFd, 0, 0, SOCK_CLOEXEC | SOCK_NONBLOCK, 0, 0);
                if (fd >= 0) {
                    return fd;
                }
                int e = errno(st);
                if (e == EINTR) {
                    continue;
                }
                if (e == EAGAIN) {
                    return -1;
                }
                throw new ErrnoException("accept4", e);
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A socket connected to {@code path}. */
    static int connect(Path path) throws ErrnoException {
        int fd = socket(false);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = Native.errnoState(arena);
            if (Native.syscall(st, Sys.CONNECT, fd, sockaddr(arena, path).address(), 110, 0, 0, 0) != 0) {
                throw new ErrnoException("connect(" + path + ")", errno(st));
            }
            return fd;
        } catch (Throwable t) {
            throw closing(fd, t);
        }
    }

    /** Two connected sockets (for the backend request channel in tests). */
    static int[] socketPair() throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = Native.errnoState(arena);
            MemorySegment fds = arena.allocate(JAVA_INT, 2);
            if (Native.syscall(st, Sys.SOCKETPAIR, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.address(), 0, 0) != 0) {
                throw new ErrnoException("socketpair", errno(st));
            }
            return new int[] {fds.getAtIndex(JAVA_INT, 0), fds.getAtIndex(JAVA_INT, 1)};
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Result of one {@link #recv}. */
    record Received(long bytes, int[] fds, boolean truncatedControl) {
        static final Received AGAIN = new Received(-1, new int[0], false);
    }

    /**
     * One {@code recvmsg} of up to {@code len} bytes into {@code buf} at {@code offset}, with any
     * fds that came with them (close-on-exec).
     *
     * @return bytes read (0 at end of stream), or {@link Received#AGAIN} when non-blocking and
     *         nothing is there
     */
    static Received recv(int fd, MemorySegment buf, long offset, long len, boolean nonBlocking) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = Native.errnoState(arena);
            MemorySegment iov = arena.allocate(16, 8);
            iov.set(JAVA_LONG, 0, buf.address() + offset);
            iov.set(JAVA_LONG, 8, len);
            long controlLen = 16 + 4L * MAX_FDS;
            MemorySegment control = arena.allocate(controlLen, 8);
            MemorySegment msg = arena.allocate(56, 8);
            msg.set(JAVA_LONG, 16, iov.address());
            msg.set(JAVA_LONG, 24, 1);
            msg.set(JAVA_LONG, 32, control.address());
            msg.set(JAVA_LONG, 40, controlLen);
            int flags = MSG_CMSG_CLOEXEC | (nonBlocking ? MSG_DONTWAIT : 0);
            while (true) {
                long n = Native.syscall(st, Sys.RECVMSG, fd, msg.address(), flags, 0, 0, 0);
                if (n < 0) {
                    int e = errno(st);
                    if (e == EINTR) {
                        continue;
                    }
                    if (e == EAGAIN && nonBlocking) {
                        return Received.AGAIN;
                    }
                    throw new ErrnoException("recvmsg", e);
                }
                int msgFlags = msg.get(JAVA_INT, 48);
                int[] fds = parseFds(control, msg.get(JAVA_LONG, 40));
                return new Received(n, fds, (msgFlags & MSG_CTRUNC) != 0);
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static int[] parseFds(MemorySegment control, long controlLen) {
        int[] out = new int[0];
        long off = 0;
        while (off + 16 <= controlLen) {
            long cmsgLen = control.get(JAVA_LONG, off);
            int level = control.get(JAVA_INT, off + 8);
            int type = control.get(JAVA_INT, off + 12);
            if (cmsgLen < 16 || off + cmsgLen > controlLen) {
                break;
            }
            if (level == SOL_SOCKET && type == SCM_RIGHTS) {
                int n = (int) ((cmsgLen - 16) / 4);
                int[] more = new int[out.length + n];
                System.arraycopy(out, 0, more, 0, out.length);
                for (int i = 0; i < n; i++) {
                    more[out.length + i] = control.get(JAVA_INT, off + 16 + 4L * i);
                }
                out = more;
            }
            off += (cmsgLen + 7) & ~7L;
        }
        return out;
    }

    /** Sends all of {@code data} in one {@code sendmsg} (retrying the rest), the fds with the first byte. */
    static void send(int fd, byte[] data, int[] fds) throws ErrnoException {
        send(fd, data, fds, false);
    }

    /**
     * Like {@link #send(int, byte[], int[])}; with {@code dontWait} a full socket buffer is an
     * error (EAGAIN) even when the fd itself is blocking (a socket a peer handed over, whose
     * blocking mode is the peer's choice).
     */
    static void send(int fd, byte[] data, int[] fds, boolean dontWait) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = Native.errnoState(arena);
            MemorySegment buf = arena.allocate(Math.max(1, data.length));
            MemorySegment.copy(data, 0, buf, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, data.length);
            MemorySegment iov = arena.allocate(16, 8);
            MemorySegment msg = arena.allocate(56, 8);
            long sent = 0;
            boolean fdsSent = fds.length == 0;
            while (sent < data.length || !fdsSent) {
                iov.set(JAVA_LONG, 0, buf.address() + sent);
                iov.set(JAVA_LONG, 8, data.length - sent);
                msg.fill((byte) 0);
                msg.set(JAVA_LONG, 16, iov.address());
                msg.set(JAVA_LONG, 24, 1);
                if (!fdsSent) {
                    long cl = 16 + 4L * fds.length;
                    MemorySegment control = arena.allocate((cl + 7) & ~7L, 8);
                    control.set(JAVA_LONG, 0, cl);
                    control.set(JAVA_INT, 8, SOL_SOCKET);
                    control.set(JAVA_INT, 12, SCM_RIGHTS);
                    for (int i = 0; i < fds.length; i++) {
                        control.set(JAVA_INT, 16 + 4L * i, fds[i]);
                    }
                    msg.set(JAVA_LONG, 32, control.address());
                    msg.set(JAVA_LONG, 40, control.byteSize());
                }
                long n = Native.syscall(st, Sys.SENDMSG, fd, msg.address(), MSG_NOSIGNAL | (dontWait ? MSG_DONTWAIT : 0), 0, 0, 0);
                if (n < 0) {
                    int e = errno(st);
                    if (e == EINTR) {
                        continue;
                    }
                    throw new ErrnoException("sendmsg", e);
                }
                fdsSent = true;
                sent += n;
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void shutdown(int fd) {
        shutdown(fd, 2); // SHUT_RDWR
    }

    /** shutdown(2): {@code how} 0 SHUT_RD, 1 SHUT_WR, 2 SHUT_RDWR; a socket already disconnected is left alone. */
    static void shutdown(int fd, int how) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = Native.errnoState(arena);
            int r = (int) Native.syscall(st, Sys.SHUTDOWN, fd, how, 0, 0, 0, 0);
            if (r != 0) {
                return; // already disconnected; nothing to do
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void closeAll(int[] fds) {
        for (int fd : fds) {
            closeQuietly(fd);
        }
    }
}
