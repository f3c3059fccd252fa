package org.jvirtio.api.linux;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
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
