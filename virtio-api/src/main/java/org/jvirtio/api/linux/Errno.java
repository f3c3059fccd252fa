package org.jvirtio.api.linux;

/**
 * The errno values jvirtio acts on (Linux, the same on x86-64 and aarch64): the one place they are
 * defined. A system call's failure arrives as an {@link ErrnoException} carrying one; an io_uring
 * completion carries its negation.
 */
public final class Errno {
    private Errno() {
    }

    public static final int EPERM = 1;
    public static final int EINTR = 4;
    public static final int EIO = 5;
    public static final int EBADF = 9;
    public static final int EAGAIN = 11;
    public static final int EBUSY = 16;
    public static final int EINVAL = 22;
    public static final int ENOSYS = 38;
    public static final int EOPNOTSUPP = 95;
}
