package org.jvirtio.rng;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.api.linux.Native;

import static java.lang.foreign.ValueLayout.*;

/**
 * getrandom(2) and read(2) into guest memory by address: the address is passed as a plain
 * {@code long} (the same in the x86-64 and AArch64 calling conventions), so a request allocates
 * no segment.
 */
final class NativeSources {
    private NativeSources() {
    }

    // One holder class per handle: each is bound on first use (Native, "Binding on first use").
    private static final class GetrandomCall {
        static final MethodHandle H = Native.downcall("getrandom",
                FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT));
    }
    private static final class Read {
        static final MethodHandle H = Native.downcall("read",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG));
    }
    /** A call interrupted by a signal returns -1 (EINTR); retried this often before giving up. */
    private static final int TRIES = 8;

    static final EntropySource GETRANDOM = new EntropySource() {
        @Override
        public int fill(MemorySegment region, long offset, int length) throws IOException {
            return transfer(region, offset, length, -1);
        }

        @Override
        public String toString() {
            return "getrandom(2)";
        }
    };

    static EntropySource file(Path path) throws IOException {
        if (!Files.isReadable(path)) {
            throw new IOException(path + " is not readable");
        }
        int fd;
        try {
            fd = Libc.open(path.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC);
        } catch (ErrnoException e) {
            throw new IOException("cannot open " + path + ": " + e.getMessage(), e);
        }
        return new EntropySource() {
            private volatile boolean closed;

            @Override
            public int fill(MemorySegment region, long offset, int length) throws IOException {
                if (closed) {
                    throw new IOException(path + " is closed");
                }
                return transfer(region, offset, length, fd);
            }

            @Override
            public void close() {
                if (!closed) {
                    closed = true;
                    Libc.closeQuietly(fd);
                }
            }

            @Override
            public String toString() {
                return path.toString();
            }
        };
    }

    /** Fills [offset, offset + length) of {@code region} by getrandom (fd -1) or read(fd). */
    private static int transfer(MemorySegment region, long offset, int length, int fd) throws IOException {
        if (offset < 0 || length < 0 || offset > region.byteSize() - length) {
            throw new IndexOutOfBoundsException("range [" + offset + ", +" + length + ") outside a region of " + region.byteSize() + " bytes");
        }
        long address = region.address() + offset;
        int done = 0;
        int failures = 0;
        while (done < length) {
            long n;
            try {
                n = fd < 0 ? (long) GetrandomCall.H.invokeExact(address + done, (long) (length - done), 0)
                        : (long) Read.H.invokeExact(fd, address + done, (long) (length - done));
            } catch (Throwable t) {
                throw new IOException(t);
            }
            if (n == 0) {
                break; // end of file
            }
            if (n < 0) {
                if (++failures == TRIES) {
                    throw new IOException((fd < 0 ? "getrandom" : "read") + " failed " + TRIES + " times");
                }
                continue;
            }
            done += (int) n;
        }
        return done;
    }
}
