package org.jvirtio.api;

import java.io.Closeable;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicBoolean;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;

/**
 * An eventfd(2): the primitive for virtqueue kicks (driver to device) and calls (device to
 * driver). {@link #signal()} may be called from any thread; {@link #read()} from one thread at a
 * time (it reuses one 8-byte buffer so that a read allocates nothing).
 */
public final class EventFd implements Closeable {
    private final int fd;
    private final boolean nonBlocking;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment readBuffer = arena.allocate(ValueLayout.JAVA_LONG);
    private final AtomicBoolean closed = new AtomicBoolean();

    private EventFd(int fd, boolean nonBlocking) {
        this.fd = fd;
        this.nonBlocking = nonBlocking;
    }

    /** A new eventfd with counter 0, close-on-exec. */
    public static EventFd create(boolean nonBlocking) throws ErrnoException {
        int flags = Libc.EFD_CLOEXEC | (nonBlocking ? Libc.EFD_NONBLOCK : 0);
        return new EventFd(Libc.eventfd(0, flags), nonBlocking);
    }

    /**
     * Takes ownership of an eventfd received from elsewhere (a vhost-user SET_VRING_KICK, say).
     * {@code nonBlocking} must say how the descriptor was opened; {@link #close()} closes it.
     */
    public static EventFd adopt(int fd, boolean nonBlocking) {
        if (fd < 0) {
            throw new IllegalArgumentException("not a file descriptor: " + fd);
        }
        return new EventFd(fd, nonBlocking);
    }

    public int fd() {
        return fd;
    }

    /** Adds 1 to the counter, waking a reader. Never blocks unless the counter is near 2^64. */
    public void signal() {
        Libc.eventfdWrite(fd, 1L);
    }

    /**
     * Reads and resets the counter.
     *
     * @return the counter value; 0 when non-blocking and nothing was signalled (or the read failed)
     */
    public long read() {
        if (Libc.eventfdRead(fd, readBuffer) != 0) {
            return 0;
        }
        return readBuffer.get(ValueLayout.JAVA_LONG, 0);
    }

    /**
     * Waits until the counter is non-zero or the timeout passed, then reads it.
     *
     * @param timeoutMillis how long to wait; -1 waits forever
     * @return the counter value, 0 on timeout
     */
    public long await(int timeoutMillis) throws ErrnoException {
        if (!Libc.pollIn(fd, timeoutMillis)) {
            return 0;
        }
        // A blocking eventfd that poll() found readable does not block in read().
        return read();
    }

    public boolean isNonBlocking() {
        return nonBlocking;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            try {
                Libc.closeQuietly(fd);
            } finally {
                arena.close();
            }
        }
    }

    @Override
    public String toString() {
        return "EventFd[fd=" + fd + (closed.get() ? ", closed]" : "]");
    }
}
