package org.jvirtio.blk.rbd;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Ceph's client libraries, librados ({@code librados.so.2}) and librbd ({@code librbd.so.1}),
 * bound through the FFM API: the calls an asynchronous block backend needs and nothing else
 * (header: {@code rbd/librbd.h} from Debian's librbd-dev). No callback is ever passed: librbd's
 * completions are collected with {@link #pollIoEvents} after the image's eventfd fires, so no
 * librbd thread calls into Java.
 *
 * <p>The libraries are looked up when the first RBD disk opens ({@link #check()}); a machine
 * without them gets one line saying which package to install. Every handle lives in a holder
 * class of its own, bound on first use (as {@code org.jvirtio.api.linux.Native} explains).
 * librbd returns {@code -errno} itself: nothing captures errno here.
 */
final class Librbd {
    private Librbd() {
    }

    static final int EVENT_TYPE_EVENTFD = 2;
    static final int RBD_WRITE_ZEROES_FLAG_THICK_PROVISION = 1;

    static final Linker LINKER = Linker.nativeLinker();

    /** librbd and librados, or why they cannot be loaded. */
    private static final class Libs {
        static final SymbolLookup LOOKUP;
        static final String PROBLEM;

        static {
            SymbolLookup l = null;
            String problem = null;
            try {
                SymbolLookup rados = SymbolLookup.libraryLookup("librados.so.2", Arena.global());
                SymbolLookup rbd = SymbolLookup.libraryLookup("librbd.so.1", Arena.global());
                l = rbd.or(rados);
            } catch (IllegalArgumentException e) {
                problem = "Ceph's client libraries are not installed (librbd.so.1, librados.so.2: apt-get install librbd1)";
            }
            LOOKUP = l;
            PROBLEM = problem;
        }
    }

    /** Throws the one-line reason when librbd or librados cannot be loaded. */
    static void check() {
        if (Libs.PROBLEM != null) {
            throw new IllegalArgumentException(Libs.PROBLEM);
        }
    }

    /** Whether librbd and librados load on this machine. */
    static boolean available() {
        return Libs.PROBLEM == null;
    }

    static MethodHandle bind(String name, FunctionDescriptor fd) {
        check();
        MemorySegment symbol = Libs.LOOKUP.find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("librbd/librados has no " + name));
        return LINKER.downcallHandle(symbol, fd);
    }

    // ---- librados: the cluster connection and the pool ----

    private static final class Create2 {
        static final MethodHandle H = bind("rados_create2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG));
    }
    private static final class ConfReadFile {
        static final MethodHandle H = bind("rados_conf_read_file", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }
    private static final class ConfSet {
        static final MethodHandle H = bind("rados_conf_set", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    }
    private static final class Connect {
        static final MethodHandle H = bind("rados_connect", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }
    private static final class Shutdown {
        static final MethodHandle H = bind("rados_shutdown", FunctionDescriptor.ofVoid(ADDRESS));
    }
    private static final class IoctxCreate {
        static final MethodHandle H = bind("rados_ioctx_create", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    }
    private static final class IoctxSetNamespace {
        static final MethodHandle H = bind("rados_ioctx_set_namespace", FunctionDescriptor.ofVoid(ADDRESS, ADDRESS));
    }
    private static final class IoctxDestroy {
        static final MethodHandle H = bind("rados_ioctx_destroy", FunctionDescriptor.ofVoid(ADDRESS));
    }

    // ---- librbd: the image ----

    private static final class Open {
        static final MethodHandle H = bind("rbd_open", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
    }
    private static final class OpenReadOnly {
        static final MethodHandle H = bind("rbd_open_read_only", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
    }
    private static final class Close {
        static final MethodHandle H = bind("rbd_close", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }
    private static final class GetSize {
        static final MethodHandle H = bind("rbd_get_size", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }
    private static final class SetImageNotification {
        static final MethodHandle H = bind("rbd_set_image_notification", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    }
    private static final class Read {
        static final MethodHandle H = bind("rbd_read", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }
    private static final class Write {
        static final MethodHandle H = bind("rbd_write", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }
    private static final class Flush {
        static final MethodHandle H = bind("rbd_flush", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }
    private static final class Discard {
        static final MethodHandle H = bind("rbd_discard", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    }
    private static final class WriteZeroes {
        static final MethodHandle H = bind("rbd_write_zeroes", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT));
    }

    // ---- librbd: asynchronous I/O (the data path; addresses passed as longs) ----

    private static final class AioCreateCompletion {
        static final MethodHandle H = bind("rbd_aio_create_completion", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }
    private static final class AioReadv {
        static final MethodHandle H = bind("rbd_aio_readv", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG));
    }
    private static final class AioWritev {
        static final MethodHandle H = bind("rbd_aio_writev", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG));
    }
    private static final class AioFlush {
        static final MethodHandle H = bind("rbd_aio_flush", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG));
    }
    private static final class AioDiscard {
        static final MethodHandle H = bind("rbd_aio_discard", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }
    private static final class AioWriteZeroes {
        static final MethodHandle H = bind("rbd_aio_write_zeroes",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT));
    }
    private static final class AioGetReturnValue {
        static final MethodHandle H = bind("rbd_aio_get_return_value", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG));
    }
    private static final class AioGetArg {
        static final MethodHandle H = bind("rbd_aio_get_arg", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG));
    }
    private static final class AioRelease {
        static final MethodHandle H = bind("rbd_aio_release", FunctionDescriptor.ofVoid(JAVA_LONG));
    }
    private static final class PollIoEvents {
        static final MethodHandle H = bind("rbd_poll_io_events", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));
    }

    static RuntimeException unexpected(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    static int create2(MemorySegment cluster, MemorySegment clusterName, MemorySegment name) {
        try {
            return (int) Create2.H.invokeExact(cluster, clusterName, name, 0L);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int confReadFile(MemorySegment cluster, MemorySegment path) {
        try {
            return (int) ConfReadFile.H.invokeExact(cluster, path);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int confSet(MemorySegment cluster, MemorySegment option, MemorySegment value) {
        try {
            return (int) ConfSet.H.invokeExact(cluster, option, value);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int connect(MemorySegment cluster) {
        try {
            return (int) Connect.H.invokeExact(cluster);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static void shutdown(MemorySegment cluster) {
        try {
            Shutdown.H.invokeExact(cluster);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int ioctxCreate(MemorySegment cluster, MemorySegment pool, MemorySegment ioctx) {
        try {
            return (int) IoctxCreate.H.invokeExact(cluster, pool, ioctx);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static void ioctxSetNamespace(MemorySegment ioctx, MemorySegment ns) {
        try {
            IoctxSetNamespace.H.invokeExact(ioctx, ns);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static void ioctxDestroy(MemorySegment ioctx) {
        try {
            IoctxDestroy.H.invokeExact(ioctx);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /** {@code rbd_open}, or {@code rbd_open_read_only} when {@code readOnly}; {@code snapshot} is NULL for the image itself. */
    static int open(MemorySegment ioctx, MemorySegment name, MemorySegment image, boolean readOnly, MemorySegment snapshot) {
        try {
            return readOnly ? (int) OpenReadOnly.H.invokeExact(ioctx, name, image, snapshot)
                    : (int) Open.H.invokeExact(ioctx, name, image, snapshot);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int close(MemorySegment image) {
        try {
            return (int) Close.H.invokeExact(image);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int getSize(MemorySegment image, MemorySegment size) {
        try {
            return (int) GetSize.H.invokeExact(image, size);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int setImageNotification(MemorySegment image, int fd, int type) {
        try {
            return (int) SetImageNotification.H.invokeExact(image, fd, type);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static long read(MemorySegment image, long offset, long length, long buffer) {
        try {
            return (long) Read.H.invokeExact(image, offset, length, buffer);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static long write(MemorySegment image, long offset, long length, long buffer) {
        try {
            return (long) Write.H.invokeExact(image, offset, length, buffer);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int flush(MemorySegment image) {
        try {
            return (int) Flush.H.invokeExact(image);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int discard(MemorySegment image, long offset, long length) {
        try {
            return (int) Discard.H.invokeExact(image, offset, length);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static long writeZeroes(MemorySegment image, long offset, long length, int zeroFlags) {
        try {
            return (long) WriteZeroes.H.invokeExact(image, offset, length, zeroFlags, 0);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /** Creates a completion carrying {@code arg} (no callback) into {@code *out}; 0 or -errno. */
    static int aioCreateCompletion(long arg, long out) {
        try {
            return (int) AioCreateCompletion.H.invokeExact(arg, 0L, out);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int aioReadv(long image, long iov, int count, long offset, long completion) {
        try {
            return (int) AioReadv.H.invokeExact(image, iov, count, offset, completion);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int aioWritev(long image, long iov, int count, long offset, long completion) {
        try {
            return (int) AioWritev.H.invokeExact(image, iov, count, offset, completion);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int aioFlush(long image, long completion) {
        try {
            return (int) AioFlush.H.invokeExact(image, completion);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int aioDiscard(long image, long offset, long length, long completion) {
        try {
            return (int) AioDiscard.H.invokeExact(image, offset, length, completion);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static int aioWriteZeroes(long image, long offset, long length, long completion, int zeroFlags) {
        try {
            return (int) AioWriteZeroes.H.invokeExact(image, offset, length, completion, zeroFlags, 0);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static long aioGetReturnValue(long completion) {
        try {
            return (long) AioGetReturnValue.H.invokeExact(completion);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static long aioGetArg(long completion) {
        try {
            return (long) AioGetArg.H.invokeExact(completion);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    static void aioRelease(long completion) {
        try {
            AioRelease.H.invokeExact(completion);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /** Fills {@code comps} (an array of {@code max} pointers) with finished completions; returns how many or -errno. */
    static int pollIoEvents(long image, long comps, int max) {
        try {
            return (int) PollIoEvents.H.invokeExact(image, comps, max);
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }
}
