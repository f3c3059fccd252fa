package org.jvirtio.blk.dataplane;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.api.linux.Native;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import org.jvirtio.api.linux.Errno;

/**
 * A minimal io_uring (Linux 5.1+; {@code io_uring_setup(2)}, {@code io_uring_enter(2)},
 * {@code io_uring_register(2)}) bound through the FFM API: no liburing, no JNI.
 *
 * <p>One thread owns an instance (no locks): it fills submission entries with {@link #nextSqe()}
 * and the {@code prep*} helpers, hands them to the kernel with {@link #submit()} (one system
 * call per batch), and takes completions with {@link #reap(Completions)}, which reads the
 * completion ring in user space (no system call). Ring indices are read with acquire and
 * written with release semantics, as the kernel's side of the protocol expects.
 *
 * <p>Layouts (x86-64 and aarch64, include/uapi/linux/io_uring.h): {@code struct io_uring_sqe}
 * is 64 bytes, {@code struct io_uring_cqe} 16, {@code struct io_uring_params} 120.
 */
public final class IoUring implements AutoCloseable {
    // syscall numbers are the same on x86-64 and aarch64 (asm-generic)
    private static final long SYS_SETUP = org.jvirtio.api.linux.Sys.IO_URING_SETUP;
    private static final long SYS_ENTER = org.jvirtio.api.linux.Sys.IO_URING_ENTER;
    private static final long SYS_REGISTER = org.jvirtio.api.linux.Sys.IO_URING_REGISTER;

    public static final int OP_NOP = 0;
    public static final int OP_READV = 1;
    public static final int OP_WRITEV = 2;
    public static final int OP_FSYNC = 3;
    public static final int OP_FALLOCATE = 17;

    public static final int IOSQE_FIXED_FILE = 1;
    public static final int FSYNC_DATASYNC = 1;

    private static final int SETUP_CLAMP = 1 << 4;
    private static final int SETUP_SUBMIT_ALL = 1 << 7;
    private static final int FEAT_SINGLE_MMAP = 1;
    private static final int FEAT_NODROP = 1 << 1;
    private static final int REGISTER_FILES = 2;
    private static final int REGISTER_EVENTFD = 4;
    private static final long OFF_SQES = 0x10000000L;

    private static final int SQE = 64;
    private static final int CQE = 16;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MemorySegment SYSCALL = LINKER.defaultLookup().find("syscall").orElseThrow();
    // Bound on first use (Native, "Binding on first use"). Setup and register go through
    // Native.syscall, the control path's one downcall.
    /**
     * syscall(2) without errno capture, for io_uring_enter on the data path: capturing allocates a
     * segment slice per call (SharedUtils.checkCaptureSegment). A failure is repeated through
     * the capturing handle to learn errno (failures are rare and repeatable: EBUSY, EAGAIN).
     */
    private static final class Syscall5Fast {
        static final MethodHandle H = LINKER.downcallHandle(SYSCALL,
                FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
                Linker.Option.firstVariadicArg(1));
    }
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();

    private final Arena arena = Arena.ofShared();
    private final MemorySegment errno = Native.errnoState(arena);
    private final int fd;
    private final MemorySegment ring;
    private final MemorySegment sqes;
    private final long ringSize;
    private final int sqEntries;
    private final long sqHeadOff;
    private final long sqTailOff;
    private final int cqMask;
    private final long cqHeadOff;
    private final long cqTailOff;
    private final long cqesOff;
    private int sqTail;
    private int cqHead;
    private boolean closed;

    /** Receives completions from {@link #reap(Completions)}. */
    @FunctionalInterface
    public interface Completions {
        void complete(long userData, int result);
    }

    private IoUring(int entries) throws ErrnoException {
        MemorySegment p = arena.allocate(120, 8);
        int fd = -1;
        try {
            p.set(JAVA_INT, 8, SETUP_CLAMP | SETUP_SUBMIT_ALL);
            fd = (int) syscall("io_uring_setup", SYS_SETUP, entries, p.address(), 0, 0, 0);
        } catch (ErrnoException e) {
            if (e.errno() != Errno.EINVAL) { // a kernel before 5.18 does not know SUBMIT_ALL
                arena.close();
                throw e;
            }
            p.fill((byte) 0);
            p.set(JAVA_INT, 8, SETUP_CLAMP);
            try {
                fd = (int) syscall("io_uring_setup", SYS_SETUP, entries, p.address(), 0, 0, 0);
            } catch (ErrnoException e2) {
                arena.close();
                throw e2;
            }
        }
        this.fd = fd;
        try {
            int features = p.get(JAVA_INT, 20);
            if ((features & FEAT_SINGLE_MMAP) == 0 || (features & FEAT_NODROP) == 0) {
                throw new ErrnoException("io_uring_setup (kernel lacks SINGLE_MMAP/NODROP)", 95);
            }
            this.sqEntries = p.get(JAVA_INT, 0);
            int cqEntries = p.get(JAVA_INT, 4);
            this.sqHeadOff = p.get(JAVA_INT, 40);
            this.sqTailOff = p.get(JAVA_INT, 44);
            long sqMaskOff = p.get(JAVA_INT, 48);
            long sqArrayOff = p.get(JAVA_INT, 64);
            this.cqHeadOff = p.get(JAVA_INT, 80);
            this.cqTailOff = p.get(JAVA_INT, 84);
            long cqMaskOff = p.get(JAVA_INT, 88);
            this.cqesOff = p.get(JAVA_INT, 100);
            this.ringSize = Math.max(sqArrayOff + 4L * sqEntries, cqesOff + (long) CQE * cqEntries);
            this.ring = Libc.mmap(ringSize, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_POPULATE, fd, 0).reinterpret(ringSize);
            MemorySegment s;
            try {
                s = Libc.mmap((long) SQE * sqEntries, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_POPULATE, fd, OFF_SQES)
                        .reinterpret((long) SQE * sqEntries);
            } catch (ErrnoException e) {
                Libc.munmap(ring.address(), ringSize);
                throw e;
            }
            this.sqes = s;
            this.sqMaskValue = ring.get(JAVA_INT, sqMaskOff);
            this.cqMask = ring.get(JAVA_INT, cqMaskOff);
            // Submission entry i always sits in array slot i: the array is written once.
            for (int i = 0; i < sqEntries; i++) {
                ring.set(JAVA_INT, sqArrayOff + 4L * i, i);
            }
            this.sqTail = (int) INT.getAcquire(ring, sqTailOff);
            this.cqHead = (int) INT.getAcquire(ring, cqHeadOff);
        } catch (ErrnoException | RuntimeException e) {
            Libc.close(fd);
            arena.close();
            throw e;
        }
    }

    private final int sqMaskValue;

    /**
     * Sets up a ring with at least {@code entries} submission entries (rounded up to a power of
     * two, clamped by the kernel).
     *
     * @throws ErrnoException when io_uring is unavailable: ENOSYS (old kernel), EPERM (seccomp,
     *                        or the sysctl kernel.io_uring_disabled), ENOMEM (memlock limit)
     */
    public static IoUring create(int entries) throws ErrnoException {
        return new IoUring(Math.max(1, Integer.highestOneBit(Math.max(1, entries - 1)) << 1));
    }

    private long syscall(String name, long nr, long a, long b, long c, long d, long e) throws ErrnoException {
        long r;
        try {
            r = Native.syscall(errno, nr, a, b, c, d, e, 0);
        } catch (RuntimeException t) {
            throw new IllegalStateException(t);
        }
        if (r < 0) {
            throw new ErrnoException(name, Native.errno(errno));
        }
        return r;
    }

    public int fd() {
        return fd;
    }

    /**
     * Submits a NOP and waits for its completion: proves that io_uring_enter works here, not just
     * io_uring_setup (a seccomp profile may allow one and refuse the other).
     */
    public void probe() throws ErrnoException {
        long s = nextSqe();
        if (s < 0) {
            throw new IllegalStateException("probe on a busy ring");
        }
        prep(s, OP_NOP, 0, 0, 0, 0, 0, 0, -1L);
        INT.setRelease(ring, sqTailOff, sqTail);
        syscall("io_uring_enter", SYS_ENTER, fd, sqReady(), 1, 1 /* GETEVENTS */, 0);
        int[] res = {Integer.MIN_VALUE};
        reap((u, r) -> res[0] = r);
        if (res[0] != 0) {
            throw new ErrnoException("io_uring NOP", res[0] == Integer.MIN_VALUE ? 5 : -res[0]);
        }
    }

    /** Number of submission entries. */
    public int entries() {
        return sqEntries;
    }

    /** Makes {@code fds} the registered file table: SQEs then name index i with {@link #IOSQE_FIXED_FILE}. */
    public void registerFiles(int... fds) throws ErrnoException {
        MemorySegment a = arena.allocate(4L * fds.length, 4);
        for (int i = 0; i < fds.length; i++) {
            a.set(JAVA_INT, 4L * i, fds[i]);
        }
        syscall("io_uring_register(FILES)", SYS_REGISTER, fd, REGISTER_FILES, a.address(), fds.length, 0);
    }

    /**
     * Signals {@code eventFd} whenever completions are posted (IORING_REGISTER_EVENTFD). Not the
     * _ASYNC variant: it stays silent for completions posted by task work on the submitting
     * thread (buffered reads of pages not yet in the page cache), which then wait in the ring
     * until some other event wakes the thread.
     */
    public void registerEventFd(int eventFd) throws ErrnoException {
        MemorySegment a = arena.allocate(4, 4);
        a.set(JAVA_INT, 0, eventFd);
        syscall("io_uring_register(EVENTFD)", SYS_REGISTER, fd, REGISTER_EVENTFD, a.address(), 1, 0);
    }

    /** Submission entries queued and not yet handed to the kernel, plus those it has not consumed. */
    public int sqReady() {
        return sqTail - (int) INT.getAcquire(ring, sqHeadOff);
    }

    /**
     * The offset in {@link #sqes()} of a zeroed submission entry to fill, or -1 when the
     * submission ring is full (submit first).
     */
    public long nextSqe() {
        if (sqReady() >= sqEntries) {
            return -1;
        }
        long off = (long) SQE * (sqTail & sqMaskValue);
        for (int i = 0; i < SQE; i += 8) {
            sqes.set(JAVA_LONG, off + i, 0L);
        }
        sqTail++;
        return off;
    }

    /** The mapped submission entries. */
    public MemorySegment sqes() {
        return sqes;
    }

    /** Fills the common fields of a submission entry. */
    public void prep(long sqe, int op, int flags, int fileIndex, long offset, long addr, int len, int opFlags, long userData) {
        sqes.set(ValueLayout.JAVA_BYTE, sqe, (byte) op);
        sqes.set(ValueLayout.JAVA_BYTE, sqe + 1, (byte) flags);
        sqes.set(JAVA_INT, sqe + 4, fileIndex);
        sqes.set(JAVA_LONG, sqe + 8, offset);
        sqes.set(JAVA_LONG, sqe + 16, addr);
        sqes.set(JAVA_INT, sqe + 24, len);
        sqes.set(JAVA_INT, sqe + 28, opFlags);
        sqes.set(JAVA_LONG, sqe + 32, userData);
    }

    /**
     * Publishes the queued entries (release-store of the SQ tail) and enters the kernel once.
     *
     * @return the number the kernel consumed (it may take fewer when the completion side is
     *         backed up; the rest stays queued for the next call)
     */
    public int submit() throws ErrnoException {
        INT.setRelease(ring, sqTailOff, sqTail);
        int n = sqReady();
        if (n == 0) {
            return 0;
        }
        long r;
        try {
            r = (long) Syscall5Fast.H.invokeExact(SYS_ENTER, (long) fd, (long) n, 0L, 0L, 0L);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (r >= 0) {
            return (int) r;
        }
        while (true) {
            try {
                return (int) syscall("io_uring_enter", SYS_ENTER, fd, sqReady(), 0, 0, 0);
            } catch (ErrnoException e) {
                if (e.errno() != Errno.EINTR) {
                    throw e;
                }
            }
        }
    }

    /** Waits in the kernel until at least {@code min} completions are ready (tests, shutdown). */
    public void awaitCompletions(int min) throws ErrnoException {
        INT.setRelease(ring, sqTailOff, sqTail);
        syscall("io_uring_enter", SYS_ENTER, fd, sqReady(), min, 1 /* GETEVENTS */, 0);
    }

    /** Whether completions wait in the ring (no system call). */
    public boolean hasCompletions() {
        return (int) INT.getAcquire(ring, cqTailOff) != cqHead;
    }

    /** Hands every waiting completion to {@code sink} (no system call); returns how many. */
    public int reap(Completions sink) {
        int n = 0;
        while (true) {
            int tail = (int) INT.getAcquire(ring, cqTailOff);
            if (tail == cqHead) {
                return n;
            }
            // cqHead - tail < 0 (wrapping), not cqHead != tail: a callback may reap again
            // (a retry that finds the submission queue full does), moving cqHead past this tail.
            while (cqHead - tail < 0) {
                long off = cqesOff + (long) CQE * (cqHead & cqMask);
                long userData = ring.get(JAVA_LONG, off);
                int res = ring.get(JAVA_INT, off + 8);
                cqHead++;
                // Release the slot before the callback: it may submit, and the kernel may reuse it.
                INT.setRelease(ring, cqHeadOff, cqHead);
                n++;
                sink.complete(userData, res);
            }
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            Libc.munmap(sqes.address(), sqes.byteSize());
            Libc.munmap(ring.address(), ringSize);
        } catch (ErrnoException e) {
            // nothing else holds them; the fd close below frees the ring anyway
        }
        Libc.closeQuietly(fd);
        arena.close();
    }
}
