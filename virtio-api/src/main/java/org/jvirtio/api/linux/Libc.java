package org.jvirtio.api.linux;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The libc calls every jvirtio module needs (memory, fds, eventfds, poll), bound through the FFM
 * API ({@link Native}) on x86-64 and aarch64 Linux. Block-file calls live with virtio-blk.
 *
 * <p>Calls that can fail in a way the caller must explain capture {@code errno} and throw
 * {@link ErrnoException}. The data-path calls ({@link #eventfdWrite}, {@link #eventfdRead})
 * do not capture errno: their only expected failure is EAGAIN on a non-blocking eventfd,
 * which the return value already tells.
 */
public final class Libc {
    public static final int PROT_READ = 0x1;
    public static final int PROT_WRITE = 0x2;
    public static final int MAP_SHARED = 0x01;
    /** mmap: fault the mapping in now (io_uring's rings, touched on every request). */
    public static final int MAP_POPULATE = 0x8000;
    /** preadv2/pwritev2 and io_uring read/write flags: this write is durable when it returns (O_DSYNC for one call). */
    public static final int RWF_DSYNC = 0x2;
    /** preadv2 flag: fail with EAGAIN instead of waiting (a buffered read answered from the page cache or not at all). */
    public static final int RWF_NOWAIT = 0x8;
    public static final int MFD_CLOEXEC = 0x0001;
    public static final int MFD_ALLOW_SEALING = 0x0002;
    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;
    public static final int POLLIN = 0x001;
    public static final int TFD_NONBLOCK = 0x800;
    public static final int TFD_CLOEXEC = 0x80000;
    /** fallocate(2) modes. */
    public static final int FALLOC_FL_KEEP_SIZE = 0x1;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x2;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;
    /** Sockets: SCM_RIGHTS ancillary data and sendmsg/recvmsg flags. */
    public static final int SOL_SOCKET = 1;
    public static final int SCM_RIGHTS = 1;
    public static final int MSG_CTRUNC = 0x8;
    public static final int MSG_DONTWAIT = 0x40;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_CMSG_CLOEXEC = 0x40000000;

    // One holder class per handle: each is bound on first use (Native, "Binding on first use").
    private static final class Poll {
        static final MethodHandle H = Native.downcallErrno("poll",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    }
    private static final class EventfdWrite {
        static final MethodHandle H = Native.downcall("eventfd_write",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    }
    private static final class EventfdRead {
        static final MethodHandle H = Native.downcall("eventfd_read",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    }
    private static final class PollRaw {
        static final MethodHandle H = Native.downcall("poll",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    }
    private static final class Strerror {
        static final MethodHandle H = Native.downcall("strerror",
                FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    private Libc() {
    }

    /** {@code mmap(NULL, size, prot, flags, fd, offset)}; returns the address as a zero-length segment. */
    public static MemorySegment mmap(long size, int prot, int flags, int fd, long offset) throws ErrnoException {
        return MemorySegment.ofAddress(Native.syscallOrThrow("mmap", Sys.MMAP, 0, size, prot, flags, fd, offset));
    }

    /** {@code munmap(address, size)}. */
    public static void munmap(long address, long size) throws ErrnoException {
        Native.syscallOrThrow("munmap", Sys.MUNMAP, address, size, 0, 0, 0, 0);
    }

    /** {@code memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)}. */
    public static int memfdCreate(String name) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            return (int) Native.syscallOrThrow("memfd_create", Sys.MEMFD_CREATE, arena.allocateFrom(name).address(),
                    MFD_CLOEXEC | MFD_ALLOW_SEALING, 0, 0, 0, 0);
        }
    }

    /** {@code ftruncate(fd, size)}. */
    public static void ftruncate(int fd, long size) throws ErrnoException {
        Native.syscallOrThrow("ftruncate", Sys.FTRUNCATE, fd, size, 0, 0, 0, 0);
    }

    /** Size of the file behind {@code fd} (via {@code lseek(fd, 0, SEEK_END)}). */
    public static long fileSize(int fd) throws ErrnoException {
        return Native.syscallOrThrow("lseek", Sys.LSEEK, fd, 0, 2 /* SEEK_END */, 0, 0, 0);
    }

    /** {@code fcntl(fd, F_DUPFD_CLOEXEC, 0)}: a new descriptor for the same open file. */
    public static int dup(int fd) throws ErrnoException {
        return (int) Native.syscallOrThrow("fcntl(F_DUPFD_CLOEXEC)", Sys.FCNTL, fd, 1030 /* F_DUPFD_CLOEXEC */, 0, 0, 0, 0);
    }

    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;
    public static final int O_NONBLOCK = 0x800;
    public static final int F_ADD_SEALS = 1033;
    public static final int F_GET_SEALS = 1034;
    public static final int F_SEAL_SEAL = 0x0001;
    public static final int F_SEAL_SHRINK = 0x0002;
    public static final int F_SEAL_GROW = 0x0004;

    /**
     * Sets O_NONBLOCK on {@code fd}. The flag belongs to the open file, so a peer that passed the
     * fd sees it too; for eventfds a peer hands over (vhost-user kick, call, err) that is what keeps
     * our writes and reads from ever blocking on a counter or pipe the peer controls.
     */
    public static void setNonBlocking(int fd) throws ErrnoException {
        int flags = fcntl(fd, F_GETFL, 0);
        if ((flags & O_NONBLOCK) == 0) {
            fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        }
    }

    /** {@code fcntl(fd, cmd, arg)} for commands taking an int (F_GET_SEALS, F_ADD_SEALS, ...). */
    public static int fcntl(int fd, int cmd, int arg) throws ErrnoException {
        return (int) Native.syscallOrThrow("fcntl(" + cmd + ")", Sys.FCNTL, fd, cmd, arg, 0, 0, 0);
    }

    /** {@code close(fd)}. EINTR still closes the descriptor on Linux, so it is not an error here. */
    public static void close(int fd) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Native.errnoState(arena);
            if (Native.syscall(state, Sys.CLOSE, fd, 0, 0, 0, 0, 0) != 0 && Native.errno(state) != Errno.EINTR) {
                throw new ErrnoException("close", Native.errno(state));
            }
        }
    }

    /**
     * Closes {@code fd} where nothing can be done about a failure (a descriptor handed over and not
     * wanted, cleanup after another error): on Linux the descriptor is gone either way. Does
     * nothing for a negative fd.
     */
    public static void closeQuietly(int fd) {
        if (fd < 0) {
            return;
        }
        try {
            close(fd);
        } catch (ErrnoException e) {
            // The descriptor is released even when close reports an error.
        }
    }

    /** {@code eventfd(initval, flags)}. */
    public static int eventfd(int initval, int flags) throws ErrnoException {
        return (int) Native.syscallOrThrow("eventfd", Sys.EVENTFD2, initval, flags, 0, 0, 0, 0);
    }

    /** glibc's {@code eventfd_write}: adds {@code value}; returns 0 or -1. No errno capture (data path). */
    public static int eventfdWrite(int fd, long value) {
        try {
            return (int) EventfdWrite.H.invokeExact(fd, value);
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

    /** glibc's {@code eventfd_read} into an 8-byte buffer; returns 0 or -1. No errno capture (data path). */
    public static int eventfdRead(int fd, MemorySegment eightBytes) {
        try {
            return (int) EventfdRead.H.invokeExact(fd, eightBytes);
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

    /**
     * Waits until {@code fd} is readable or {@code timeoutMillis} passed ({@code -1}: forever).
     *
     * @return true when readable (or hung up), false on timeout
     */
    public static boolean pollIn(int fd, int timeoutMillis) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Native.errnoState(arena);
            MemorySegment pfd = arena.allocate(8, 4); // struct pollfd { int fd; short events; short revents; }
            while (true) {
                pfd.set(ValueLayout.JAVA_INT, 0, fd);
                pfd.set(ValueLayout.JAVA_SHORT, 4, (short) POLLIN);
                pfd.set(ValueLayout.JAVA_SHORT, 6, (short) 0);
                int r = (int) Poll.H.invokeExact(state, pfd, 1L, timeoutMillis);
                if (r < 0) {
                    if (Native.errno(state) == Errno.EINTR) {
                        continue;
                    }
                    throw new ErrnoException("poll", Native.errno(state));
                }
                return r > 0;
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

    /**
     * {@code poll(fds, n, timeout)} on a caller-owned array of {@code struct pollfd} (8 bytes
     * each: int fd, short events, short revents), allocating nothing.
     *
     * @return the number of ready descriptors, 0 on timeout, -1 on error (EINTR included)
     */
    public static int poll(MemorySegment pollfds, int n, int timeoutMillis) {
        try {
            return (int) PollRaw.H.invokeExact(pollfds, (long) n, timeoutMillis);
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int O_CLOEXEC = 0x80000;
    public static final int O_DIRECT = 0x4000;

    /** {@code open(path, flags)}. */
    public static int open(String path, int flags) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            return (int) Native.syscallOrThrow("open(" + path + ")", Sys.OPENAT, Sys.AT_FDCWD, arena.allocateFrom(path).address(), flags, 0, 0, 0);
        }
    }

    /** The C library's text for an errno value. */
    public static String strerror(int errno) {
        try {
            MemorySegment s = (MemorySegment) Strerror.H.invokeExact(errno);
            return s.reinterpret(256).getString(0);
        } catch (Throwable t) {
            return "errno " + errno;
        }
    }
}
