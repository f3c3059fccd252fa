package org.jvirtio.api.linux;

/**
 * The Linux system call numbers jvirtio calls through {@link Native#syscall}, for the machine it
 * runs on (x86-64 or aarch64; the numbers differ between the two). On any other architecture
 * each is -1 and the call fails with ENOSYS.
 */
public final class Sys {
    private static final String ARCH = System.getProperty("os.arch");
    private static final boolean X86 = ARCH.equals("amd64") || ARCH.equals("x86_64");
    private static final boolean ARM = ARCH.equals("aarch64");

    private Sys() {
    }

    private static long nr(long x86, long arm) {
        return X86 ? x86 : ARM ? arm : -1;
    }

    public static final long READ = nr(0, 63);
    public static final long WRITEV = nr(20, 66);
    public static final long IOCTL = nr(16, 29);
    public static final long CLOSE = nr(3, 57);
    public static final long MMAP = nr(9, 222);
    public static final long MUNMAP = nr(11, 215);
    public static final long LSEEK = nr(8, 62);
    public static final long FTRUNCATE = nr(77, 46);
    public static final long FCNTL = nr(72, 25);
    public static final long OPENAT = nr(257, 56);
    public static final long FSTATFS = nr(138, 44);
    public static final long PREADV2 = nr(327, 286);
    public static final long MEMFD_CREATE = nr(319, 279);
    public static final long EVENTFD2 = nr(290, 19);
    public static final long SOCKET = nr(41, 198);
    public static final long SOCKETPAIR = nr(53, 199);
    public static final long BIND = nr(49, 200);
    public static final long LISTEN = nr(50, 201);
    public static final long CONNECT = nr(42, 203);
    public static final long ACCEPT4 = nr(288, 242);
    public static final long SHUTDOWN = nr(48, 210);
    public static final long SENDMSG = nr(46, 211);
    public static final long RECVMSG = nr(47, 212);
    public static final long SENDTO = nr(44, 206);
    public static final long GETSOCKNAME = nr(51, 204);
    public static final long GETSOCKOPT = nr(55, 209);
    /** The io_uring calls have the same numbers everywhere. */
    public static final long IO_URING_SETUP = 425;
    public static final long IO_URING_ENTER = 426;
    public static final long IO_URING_REGISTER = 427;

    /** {@code AT_FDCWD} for openat: paths relative to the working directory. */
    public static final long AT_FDCWD = -100;
}
