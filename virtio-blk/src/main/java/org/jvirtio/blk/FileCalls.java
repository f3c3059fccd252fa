package org.jvirtio.blk;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Native;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.jvirtio.api.linux.Errno.EAGAIN;
import static org.jvirtio.api.linux.Errno.EINTR;

/**
 * The libc calls of block files (positional I/O, fdatasync, fallocate, O_DIRECT), bound through
 * {@link Native}. Used by {@link FileBackend} and by the io_uring data plane.
 */
public final class FileCalls {
    private FileCalls() {
    }


    // One holder class per handle: each is bound on first use (Native, "Binding on first use").
    private static final class Pread {
        static final MethodHandle H = Native.downcallErrno("pread",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    }
    private static final class Pwrite {
        static final MethodHandle H = Native.downcallErrno("pwrite",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    }
    private static final class PwritevRaw {
        static final MethodHandle H = Native.downcall("pwritev",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
    }
    private static final class Preadv2Raw {
        static final MethodHandle H = Native.downcall("preadv2",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    }
    private static final class Fdatasync {
        static final MethodHandle H = Native.downcallErrno("fdatasync",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    }
    private static final class Fallocate {
        static final MethodHandle H = Native.downcallErrno("fallocate",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG));
    }

    /**
     * Reads or writes all of {@code buf} at {@code offset}, retrying short transfers and EINTR.
     *
     * @return bytes transferred; less than the buffer only at end of file (reads)
     */
    public static long pio(int fd, MemorySegment buf, long offset, boolean write) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Native.errnoState(arena);
            long done = 0;
            long len = buf.byteSize();
            while (done < len) {
                MemorySegment p = buf.asSlice(done);
                long n = write ? (long) Pwrite.H.invokeExact(state, fd, p, len - done, offset + done)
                        : (long) Pread.H.invokeExact(state, fd, p, len - done, offset + done);
                if (n < 0) {
                    if (Native.errno(state) == EINTR || Native.errno(state) == EAGAIN) {
                        continue;
                    }
                    throw new ErrnoException(write ? "pwrite" : "pread", Native.errno(state));
                }
                if (n == 0) {
                    break;
                }
                done += n;
            }
            return done;
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

    /**
     * {@code pwritev(fd, iov, iovcnt, offset)} on a caller-built iovec array at native address
     * {@code iov}, allocating nothing and capturing no errno (data path).
     *
     * @return bytes written, or -1 (repeat the write through a call that reports errno)
     */
    public static long pwritevRaw(int fd, long iov, int iovcnt, long offset) {
        try {
            return (long) PwritevRaw.H.invokeExact(fd, iov, iovcnt, offset);
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

    /**
     * {@code preadv2(fd, iov, iovcnt, offset, flags)} with the iovec array at address {@code iov}:
     * the bytes read, or -1 (errno not captured: the data path; a caller that cares repeats the
     * read through io_uring, which reports the error).
     */
    public static long preadv2Raw(int fd, long iov, int iovcnt, long offset, int flags) {
        try {
            return (long) Preadv2Raw.H.invokeExact(fd, iov, iovcnt, offset, flags);
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

    /**
     * Whether {@code fd}'s file system answers buffered reads with {@code RWF_NOWAIT} (from the
     * page cache, or EAGAIN at once): ext4, xfs and btrfs do; tmpfs and others refuse the flag
     * (EOPNOTSUPP). Probed with a one-byte read at offset 0.
     */
    public static boolean readsWithoutWaiting(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(1);
            MemorySegment iov = arena.allocate(16, 8);
            iov.set(JAVA_LONG, 0, buf.address());
            iov.set(JAVA_LONG, 8, 1);
            MemorySegment state = Native.errnoState(arena);
            long r = Native.syscall(state, org.jvirtio.api.linux.Sys.PREADV2, fd, iov.address(), 1, 0, 0, org.jvirtio.api.linux.Libc.RWF_NOWAIT);
            return r >= 0 || Native.errno(state) == EAGAIN;
        }
    }

    /** {@code f_type} of {@code fstatfs(fd)}: the file system's magic number (TMPFS_MAGIC, ...). */
    public static long fileSystemType(int fd) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(120, 8); // struct statfs on x86-64 and aarch64; f_type comes first
            Native.syscallOrThrow("fstatfs", org.jvirtio.api.linux.Sys.FSTATFS, fd, buf.address(), 0, 0, 0, 0);
            return buf.get(JAVA_LONG, 0);
        }
    }

    /** {@code fdatasync(fd)}. */
    public static void fdatasync(int fd) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Native.errnoState(arena);
            if ((int) Fdatasync.H.invokeExact(state, fd) != 0) {
                throw new ErrnoException("fdatasync", Native.errno(state));
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

    /** {@code fallocate(fd, mode, offset, len)}. */
    public static void fallocate(int fd, int mode, long offset, long len) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Native.errnoState(arena);
            if ((int) Fallocate.H.invokeExact(state, fd, mode, offset, len) != 0) {
                throw new ErrnoException("fallocate", Native.errno(state));
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw Native.unexpected(t);
        }
    }

}
