package org.jvirtio.blk.rbd;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The librados and librbd calls of {@link RbdLockTakeover}, bound as {@link Librbd} binds the
 * data path's: which cluster and which client this is, who holds an image's exclusive lock, and
 * breaking it.
 */
final class LibrbdLocks {
    private LibrbdLocks() {
    }

    /** {@code RBD_LOCK_MODE_EXCLUSIVE}: the exclusive-lock feature's lock. */
    static final int LOCK_MODE_EXCLUSIVE = 0;

    private static final class ClusterFsid {
        static final MethodHandle H = Librbd.bind("rados_cluster_fsid", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
    }
    private static final class GetAddrs {
        static final MethodHandle H = Librbd.bind("rados_getaddrs", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }
    private static final class Free {
        static final MethodHandle H = Librbd.LINKER.downcallHandle(Librbd.LINKER.defaultLookup().find("free").orElseThrow(),
                FunctionDescriptor.ofVoid(ADDRESS));
    }

    private static final class LockGetOwners {
        static final MethodHandle H = Librbd.bind("rbd_lock_get_owners", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
    }
    private static final class LockGetOwnersCleanup {
        static final MethodHandle H = Librbd.bind("rbd_lock_get_owners_cleanup", FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG));
    }
    private static final class LockBreak {
        static final MethodHandle H = Librbd.bind("rbd_lock_break", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
    }

    /** The cluster's fsid (after connecting), or null when librados does not answer it. */
    static String clusterFsid(MemorySegment cluster) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(64);
            int r = (int) ClusterFsid.H.invokeExact(cluster, buf, 64L);
            return r < 0 ? null : buf.getString(0);
        } catch (Throwable t) {
            throw Librbd.unexpected(t);
        }
    }

    /** This client's messenger addresses as librados prints them (after connecting), or null. */
    static String getAddrs(MemorySegment cluster) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            int r = (int) GetAddrs.H.invokeExact(cluster, out);
            MemorySegment s = out.get(ADDRESS, 0);
            if (r < 0 || s.equals(MemorySegment.NULL)) {
                return null;
            }
            String addrs = s.reinterpret(4096).getString(0);
            Free.H.invokeExact(s); // strdup'ed by librados
            return addrs;
        } catch (Throwable t) {
            throw Librbd.unexpected(t);
        }
    }

    /**
     * The exclusive lock's owners (their addresses), an empty list when nobody holds it, or null
     * when it cannot be told (no exclusive-lock feature, an error).
     */
    static List<String> lockOwners(MemorySegment image) {
        try (Arena a = Arena.ofConfined()) {
            int max = 8;
            MemorySegment mode = a.allocate(JAVA_INT);
            MemorySegment owners = a.allocate(ADDRESS, max);
            MemorySegment count = a.allocate(JAVA_LONG);
            count.set(JAVA_LONG, 0, max);
            int r = (int) LockGetOwners.H.invokeExact(image, mode, owners, count);
            if (r == -2) {
                return List.of();
            }
            if (r < 0) {
                return null;
            }
            long n = count.get(JAVA_LONG, 0);
            List<String> l = new ArrayList<>();
            for (int i = 0; i < n && i < max; i++) {
                l.add(owners.getAtIndex(ADDRESS, i).reinterpret(4096).getString(0));
            }
            LockGetOwnersCleanup.H.invokeExact(owners, n);
            return l;
        } catch (Throwable t) {
            throw Librbd.unexpected(t);
        }
    }

    /** Breaks the exclusive lock {@code owner} holds (blocklisting that client); 0 or -errno (-EBUSY: another owner now). */
    static int lockBreak(MemorySegment image, String owner) {
        try (Arena a = Arena.ofConfined()) {
            return (int) LockBreak.H.invokeExact(image, LOCK_MODE_EXCLUSIVE, a.allocateFrom(owner));
        } catch (Throwable t) {
            throw Librbd.unexpected(t);
        }
    }
}
