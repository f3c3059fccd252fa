package org.jvirtio.api.linux;

import java.io.IOException;

/** A Linux system call failed; carries the call's name and errno. */
public final class ErrnoException extends IOException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int errno;

    public ErrnoException(String call, int errno) {
        super(call + " failed: " + Libc.strerror(errno) + " (errno " + errno + ")");
        this.call = call;
        this.errno = errno;
    }

    /** The name of the failed call, e.g. {@code "mmap"}. */
    public String call() {
        return call;
    }

    /** The errno value the call left. */
    public int errno() {
        return errno;
    }
}
