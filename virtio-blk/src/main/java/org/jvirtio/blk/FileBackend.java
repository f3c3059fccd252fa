package org.jvirtio.blk;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.api.linux.Errno;

/**
 * A raw image file or block device, read and written with pread/pwrite straight from and into
 * guest memory (no copy). Without O_DIRECT the page cache is a volatile cache: the device
 * offers FLUSH, reports writeback, and FLUSH is fdatasync. DISCARD punches a hole; WRITE_ZEROES
 * zeroes the range (punching a hole when UNMAP is allowed).
 */
public final class FileBackend implements BlockBackend {
    private final Path path;
    private final int fd;
    private final boolean readOnly;
    private final boolean direct;
    private final boolean memoryBacked;
    private final int inlineReadFlags;
    private volatile long size;

    /** File systems whose files live in memory: a read or write is a copy and never waits for a device. */
    private static final long TMPFS_MAGIC = 0x01021994L;
    private static final long RAMFS_MAGIC = 0x858458f6L;
    private static final long HUGETLBFS_MAGIC = 0x958458f6L;

    private FileBackend(Path path, int fd, boolean readOnly, boolean direct, boolean memoryBacked, long size) {
        this.path = path;
        this.fd = fd;
        this.readOnly = readOnly;
        this.direct = direct;
        this.memoryBacked = memoryBacked;
        this.inlineReadFlags = direct ? -1 : memoryBacked ? 0 : FileCalls.readsWithoutWaiting(fd) ? Libc.RWF_NOWAIT : -1;
        this.size = size;
    }

    /**
     * Opens an image.
     *
     * @throws IOException with one clear line when the file is missing, unreadable, or its size
     *                     is not a positive multiple of 512
     */
    public static FileBackend open(Path path, boolean readOnly, boolean direct) throws IOException {
        if (!Files.exists(path)) {
            throw new IOException("image " + path + " does not exist");
        }
        int flags = (readOnly ? Libc.O_RDONLY : Libc.O_RDWR) | Libc.O_CLOEXEC | (direct ? Libc.O_DIRECT : 0);
        int fd;
        try {
            fd = Libc.open(path.toString(), flags);
        } catch (ErrnoException e) {
            throw new IOException("cannot open image " + path + (readOnly ? " for reading" : " for reading and writing") + ": "
                    + Libc.strerror(e.errno()), e);
        }
        try {
            long size;
            try {
                size = Libc.fileSize(fd);
            } catch (ErrnoException e) {
                throw new IOException("image " + path + " has no size (not a file or block device?): " + Libc.strerror(e.errno()), e);
            }
            if (size <= 0 || size % 512 != 0) {
                throw new IOException("image " + path + " is " + size + " bytes, not a positive multiple of 512");
            }
            long fsType;
            try {
                fsType = FileCalls.fileSystemType(fd);
            } catch (ErrnoException e) {
                fsType = 0; // unknown: treated as a file that may wait for a device
            }
            boolean memory = fsType == TMPFS_MAGIC || fsType == RAMFS_MAGIC || fsType == HUGETLBFS_MAGIC;
            return new FileBackend(path, fd, readOnly, direct, memory, size);
        } catch (IOException e) {
            Libc.close(fd);
            throw e;
        }
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public long refreshSize() throws IOException {
        long s = Libc.fileSize(fd) & ~511L;
        size = s;
        return s;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    @Override
    public boolean volatileCache() {
        return !direct;
    }

    @Override
    public boolean supportsDiscard() {
        return !readOnly;
    }

    @Override
    public boolean supportsWriteZeroes() {
        return !readOnly;
    }

    /** The open image, for I/O engines that submit to the kernel themselves (io_uring). */
    public int fd() {
        return fd;
    }

    /**
     * Whether the image is on a file system that keeps files in memory (tmpfs, as
     * {@code /dev/shm} or a memory-backed Kubernetes emptyDir; ramfs; hugetlbfs): reading it is a
     * copy that never waits for a device, so the I/O path may do it inline (io_uring would hand
     * every read of such a file to an io-wq worker: these file systems cannot promise not to
     * block, RWF_NOWAIT is refused with EOPNOTSUPP).
     */
    public boolean memoryBacked() {
        return memoryBacked;
    }

    /**
     * How a read of this image can be done right on an I/O thread without waiting for a device:
     * the {@code preadv2} flags for it (0 on a memory-backed file system; RWF_NOWAIT where the
     * file system answers from the page cache or with EAGAIN at once: ext4, xfs, btrfs; probed at
     * open), or -1 (O_DIRECT, or a file system that refuses the flag).
     */
    public int inlineReadFlags() {
        return inlineReadFlags;
    }

    public boolean direct() {
        return direct;
    }

    @Override
    public void read(long offset, MemorySegment mem, long memOffset, long length) throws IOException {
        MemorySegment dst = mem.asSlice(memOffset, length);
        long n = FileCalls.pio(fd, dst, offset, false);
        if (n < length) {
            // The image shrank under us: what is past its end reads as zeros.
            dst.asSlice(n).fill((byte) 0);
        }
    }

    @Override
    public void write(long offset, MemorySegment mem, long memOffset, long length) throws IOException {
        FileCalls.pio(fd, mem.asSlice(memOffset, length), offset, true);
    }

    /**
     * Moves a whole request through an aligned bounce buffer: with O_DIRECT the kernel refuses
     * (EINVAL) guest buffers that are not aligned to the logical block, or pieces of odd length;
     * QEMU bounces those too. The slow path, for a guest that does not align (firmware, some
     * boot loaders).
     */
    public void bounce(BlockRequest r, boolean write) throws IOException {
        long len = r.length();
        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment buf = a.allocate(len, 4096);
            if (write) {
                long at = 0;
                for (int i = 0; i < r.pieceCount(); i++) {
                    MemorySegment.copy(r.pieceRegion(i), r.pieceOffset(i), buf, at, r.pieceLength(i));
                    at += r.pieceLength(i);
                }
                FileCalls.pio(fd, buf, r.offset(), true);
            } else {
                long n = FileCalls.pio(fd, buf, r.offset(), false);
                if (n < len) {
                    buf.asSlice(n).fill((byte) 0);
                }
                long at = 0;
                for (int i = 0; i < r.pieceCount(); i++) {
                    MemorySegment.copy(buf, at, r.pieceRegion(i), r.pieceOffset(i), r.pieceLength(i));
                    at += r.pieceLength(i);
                }
            }
        }
    }

    /** Whether {@code e} is O_DIRECT refusing an unaligned transfer (which {@link #bounce} fixes). */
    public boolean isAlignmentRefusal(long negativeErrno) {
        return direct && negativeErrno == -22;
    }

    /** O_DIRECT refused unaligned guest buffers (EINVAL): once more through an aligned buffer. */
    @Override
    public boolean retryTransfer(BlockRequest r, boolean write, int errno) throws IOException {
        if (!isAlignmentRefusal(-errno)) {
            return false;
        }
        bounce(r, write);
        return true;
    }

    @Override
    public void flush() throws IOException {
        FileCalls.fdatasync(fd);
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        try {
            FileCalls.fallocate(fd, Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
        } catch (ErrnoException e) {
            // A discard is a hint ("may deallocate"): without hole punching it is done by doing nothing.
            if (e.errno() != Errno.EOPNOTSUPP) {
                throw e;
            }
        }
    }

    @Override
    public void writeZeroes(long offset, long length, boolean unmap) throws IOException {
        try {
            FileCalls.fallocate(fd, unmap ? Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE : Libc.FALLOC_FL_ZERO_RANGE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
        } catch (ErrnoException e) {
            // Not every file system zeroes ranges: write zeros instead.
            try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
                MemorySegment zeros = a.allocate(Math.min(length, 1 << 20), 4096);
                for (long done = 0; done < length; done += zeros.byteSize()) {
                    long n = Math.min(zeros.byteSize(), length - done);
                    FileCalls.pio(fd, zeros.asSlice(0, n), offset + done, true);
                }
            }
        }
    }

    @Override
    public String describe() {
        return "image " + path + " (" + size + " bytes" + (readOnly ? ", read-only" : "") + (direct ? ", O_DIRECT" : "") + ")";
    }

    @Override
    public void close() throws IOException {
        Libc.close(fd);
    }
}
