package org.jvirtio.api.linux;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * How jvirtio binds C library functions with the FFM API, in one place: libc downcalls, with or
 * without {@code errno} capture, and reading the captured errno. Used by {@link Libc}, the
 * vhost-user socket calls, io_uring and the block file calls.
 *
 * <p>A capturing handle takes the capture state as its first argument: allocate it with
 * {@link #errnoState} (in a confined arena per call, or once per owner on a hot path) and read it
 * with {@link #errno} right after the call.
 *
 * <h2>Binding on first use</h2>
 * Linking a downcall costs the JVM several milliseconds at start (it spins method handles and a
 * stub class per function shape, all interpreted), so the callers keep each handle in a holder
 * class of its own, {@code private static final class Close { static final MethodHandle H =
 * Native.downcallErrno(...); }}, and call {@code Close.H.invokeExact(...)}: the handle is bound
 * when the call is first made, and a backend binds only what it uses (three calls to listen)
 * instead of every call at class initialisation. The field is still a static final, so the JIT
 * folds it into the call site as before.
 *
 * <h2>One downcall for the system calls</h2>
 * Each downcall shape costs such a stub, so the control path's system calls (sockets, mmap,
 * memfd, eventfd, close, ...) all go through one: libc's {@code syscall(2)} with errno captured,
 * {@link #syscall}, with the numbers in {@link Sys}. Listening on the vhost-user socket took four
 * stubs before (socket, bind, listen, close; 50 ms of a backend's start on one CPU) and takes one
 * now. The data path keeps its own handles without errno capture (eventfd_write, io_uring_enter).
 */
public final class Native {
    private Native() {
    }

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");
    private static final MemoryLayout STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    /** A downcall handle for libc's {@code name}. */
    public static MethodHandle downcall(String name, FunctionDescriptor fd, Linker.Option... options) {
        MemorySegment symbol = LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, fd, options);
    }

    /** A downcall handle for libc's {@code name} that captures errno into its first argument. */
    public static MethodHandle downcallErrno(String name, FunctionDescriptor fd, Linker.Option... more) {
        Linker.Option[] options = new Linker.Option[more.length + 1];
        options[0] = CAPTURE_ERRNO;
        System.arraycopy(more, 0, options, 1, more.length);
        return downcall(name, fd, options);
    }

    private static final class Syscall {
        static final MethodHandle H = downcallErrno("syscall", FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                ValueLayout.JAVA_LONG), Linker.Option.firstVariadicArg(1));
    }

    /**
     * {@code syscall(nr, a, b, c, d, e, f)} with errno captured into {@code state}
     * ({@link #errnoState}): the call's result, or -1 with the error in {@link #errno(MemorySegment)}.
     * Pointers are passed as addresses ({@code segment.address()}), unused arguments as 0.
     */
    public static long syscall(MemorySegment state, long nr, long a, long b, long c, long d, long e, long f) {
        if (nr < 0) {
            ERRNO.set(state, 0L, Errno.ENOSYS); // an architecture Sys has no numbers for
            return -1;
        }
        try {
            return (long) Syscall.H.invokeExact(state, nr, a, b, c, d, e, f);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /** As {@link #syscall}, throwing {@link ErrnoException} naming {@code what} on failure. */
    public static long syscallOrThrow(String what, long nr, long a, long b, long c, long d, long e, long f) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = errnoState(arena);
            long r = syscall(state, nr, a, b, c, d, e, f);
            if (r == -1) {
                throw new ErrnoException(what, errno(state));
            }
            return r;
        }
    }

    /** Room for the captured errno of a call. */
    public static MemorySegment errnoState(Arena arena) {
        return arena.allocate(STATE);
    }

    /** The errno a capturing call left in {@code state}. */
    public static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }

    /** What an {@code invokeExact} threw besides the declared errors: rethrown as unchecked. */
    public static RuntimeException unexpected(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }
}
