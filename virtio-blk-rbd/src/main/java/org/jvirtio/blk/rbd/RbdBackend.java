package org.jvirtio.blk.rbd;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.BlockQueueIo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A virtio-blk disk that is an RBD image on a Ceph cluster, through Ceph's own client library
 * (librbd over librados, bound with FFM in {@link Librbd}).
 *
 * <p>Each queue submits asynchronous reads and writes straight from and into guest memory on its
 * own thread ({@link RbdQueueIo}). librbd signals finished operations on one eventfd per image
 * ({@code rbd_set_image_notification}); they are collected with {@code rbd_poll_io_events}, so no
 * librbd thread ever calls into Java. With one queue the image's eventfd is the queue's
 * completion fd and the queue's thread collects its completions itself. With several, a small
 * thread of this backend collects them and hands each to its queue (a mailbox and the queue's
 * own eventfd), because one image handle serves every queue: several handles of one image in one
 * process would pass its exclusive lock back and forth on every write.
 *
 * <p>librbd's cache is off (as QEMU's {@code cache.direct=on}): a write is on the OSDs when it
 * completes. The disk is still offered as a write-back cache the guest may switch
 * (CONFIG_WCE), as qemu-storage-daemon offers it: a FLUSH is {@code rbd_aio_flush}, which
 * completes once every earlier write has, and costs nothing more with the cache off. The
 * client's timeouts bound what a dead cluster costs: connecting gives up after
 * {@link RbdOptions#connectTimeoutSeconds()} (start fails with one line), and an operation an OSD
 * does not answer fails with {@code -ETIMEDOUT} after {@link RbdOptions#opTimeoutSeconds()}
 * (librados' {@code rados_osd_op_timeout}; the request completes with IOERR and later requests
 * work again once the OSD is back).
 *
 * <p>A resize done elsewhere ({@code rbd resize}) is noticed: librbd refreshes the image on the
 * header's update notification, and a check each {@link RbdOptions#resizeCheckMillis()} of the
 * size it holds ({@code rbd_get_size}, no round trip) calls the listener the device registered
 * ({@link #watchResize}), which announces the new capacity to the guest.
 */
public final class RbdBackend implements BlockBackend {
    private static final Logger LOG = LoggerFactory.getLogger(RbdBackend.class);
    /** Queues one image serves at most (virtio-blk's --queues limit). */
    static final int MAX_QUEUES = 64;

    private final RbdImageName name;
    private final boolean readOnly;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment cluster;
    private final MemorySegment ioctx;
    private final MemorySegment image;
    private final long imageAddress;
    private final EventFd events;
    private final RbdChannels channels;
    private volatile long size;
    private volatile boolean closed;
    private volatile Runnable resizeListener;
    private final Thread resizeWatch;
    /** This process's record of its client, for a successor after a crash (null: none kept). */
    private RbdLockTakeover lockRecord;

    private RbdBackend(RbdImageName name, boolean readOnly, MemorySegment cluster, MemorySegment ioctx, MemorySegment image,
                       long size, EventFd events, boolean routed, long resizeCheckMillis) {
        this.name = name;
        this.readOnly = readOnly;
        this.cluster = cluster;
        this.ioctx = ioctx;
        this.image = image;
        this.imageAddress = image.address();
        this.size = size;
        this.events = events;
        this.channels = new RbdChannels(this, routed);
        this.resizeWatch = resizeCheckMillis > 0
                ? Thread.ofPlatform().daemon().name("jvirtio-rbd-size-" + name.image()).start(() -> watchSize(resizeCheckMillis))
                : null;
    }

    /**
     * Connects to the cluster and opens the image.
     *
     * @param queues how many queues the device will run at once (1: the queue collects its own
     *               completions; more: a collecting thread routes them)
     * @throws IOException with one line: the libraries missing, the conf unreadable, the cluster
     *                     unreachable or refusing the key, the pool or image missing
     */
    public static RbdBackend open(RbdImageName name, RbdOptions options, boolean readOnly, int queues) throws IOException {
        Objects.requireNonNull(name);
        Librbd.check();
        if (options.conf() != null && !Files.isReadable(options.conf())) {
            throw new IOException("--ceph-conf " + options.conf() + " cannot be read");
        }
        Arena tmp = Arena.ofConfined();
        MemorySegment cluster = MemorySegment.NULL;
        MemorySegment ioctx = MemorySegment.NULL;
        MemorySegment image = MemorySegment.NULL;
        RbdLockTakeover records = null;
        boolean ok = false;
        try {
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            String user = options.user() == null ? "admin" : options.user();
            int r = Librbd.create2(out, tmp.allocateFrom("ceph"), tmp.allocateFrom("client." + user));
            if (r < 0) {
                throw fail("cannot create a Ceph client for client." + user, r);
            }
            cluster = out.get(ValueLayout.ADDRESS, 0);
            r = Librbd.confReadFile(cluster, options.conf() == null ? MemorySegment.NULL : tmp.allocateFrom(options.conf().toString()));
            if (r < 0) {
                throw fail(options.conf() == null ? "no ceph.conf found (name one with --ceph-conf)" : "cannot read " + options.conf(), r);
            }
            set(tmp, cluster, "client_mount_timeout", Integer.toString(options.connectTimeoutSeconds()));
            set(tmp, cluster, "rados_mon_op_timeout", Integer.toString(options.opTimeoutSeconds()));
            set(tmp, cluster, "rados_osd_op_timeout", Integer.toString(options.opTimeoutSeconds()));
            set(tmp, cluster, "rbd_cache", "false");
            for (var e : options.settings().entrySet()) {
                int rc = Librbd.confSet(cluster, tmp.allocateFrom(e.getKey()), tmp.allocateFrom(e.getValue()));
                if (rc == -2) {
                    throw new IOException("--ceph-options: Ceph has no setting " + e.getKey());
                }
                if (rc < 0) {
                    throw fail("--ceph-options: " + e.getKey() + " = " + e.getValue() + " refused", rc);
                }
            }
            r = Librbd.connect(cluster);
            if (r < 0) {
                throw fail("cannot connect to the Ceph cluster" + (options.conf() != null ? " of " + options.conf() : "")
                        + " as client." + user, r);
            }
            r = Librbd.ioctxCreate(cluster, tmp.allocateFrom(name.pool()), out);
            if (r < 0) {
                throw r == -2 ? new IOException("pool " + name.pool() + " does not exist") : fail("cannot open pool " + name.pool(), r);
            }
            ioctx = out.get(ValueLayout.ADDRESS, 0);
            Librbd.ioctxSetNamespace(ioctx, tmp.allocateFrom(name.namespace()));
            // A snapshot cannot be written: opened read-only whatever was asked (the device then offers VIRTIO_BLK_F_RO).
            r = Librbd.open(ioctx, tmp.allocateFrom(name.image()), out, readOnly || name.isSnapshot(),
                    name.isSnapshot() ? tmp.allocateFrom(name.snapshot()) : MemorySegment.NULL);
            if (r < 0) {
                String missing = name.isSnapshot() ? name.withoutSnapshot() + " or its snapshot " + name.snapshot() : name.toString();
                throw r == -2 ? new IOException("RBD image " + missing + " does not exist") : fail("cannot open RBD image " + name, r);
            }
            image = out.get(ValueLayout.ADDRESS, 0);
            MemorySegment sz = tmp.allocate(ValueLayout.JAVA_LONG);
            r = Librbd.getSize(image, sz);
            if (r < 0) {
                throw fail("cannot read the size of " + name, r);
            }
            long size = sz.get(ValueLayout.JAVA_LONG, 0);
            if (size <= 0 || size % 512 != 0) {
                throw new IOException("RBD image " + name + " has size " + size + ": not a positive multiple of 512 bytes");
            }
            records = readOnly || name.isSnapshot() || options.lockDir() == null ? null
                    : takeOverFromADeadPredecessor(name, options.lockDir(), cluster, image);
            EventFd events = EventFd.create(true);
            r = Librbd.setImageNotification(image, events.fd(), Librbd.EVENT_TYPE_EVENTFD);
            if (r < 0) {
                events.close();
                throw fail("cannot ask librbd for completion events", r);
            }
            RbdBackend b = new RbdBackend(name, readOnly || name.isSnapshot(), cluster, ioctx, image, size, events, queues > 1,
                    name.isSnapshot() ? 0 : options.resizeCheckMillis()); // a snapshot's size never changes
            b.lockRecord = records;
            ok = true;
            return b;
        } finally {
            tmp.close();
            if (!ok) {
                if (records != null) {
                    records.forget();
                }
                if (!image.equals(MemorySegment.NULL)) {
                    Librbd.close(image);
                }
                if (!ioctx.equals(MemorySegment.NULL)) {
                    Librbd.ioctxDestroy(ioctx);
                }
                if (!cluster.equals(MemorySegment.NULL)) {
                    Librbd.shutdown(cluster);
                }
            }
        }
    }

    /**
     * Breaks the image's exclusive lock when a backend of this host died holding it, and records
     * this process's client for a successor of its own ({@link RbdLockTakeover}). A directory that
     * cannot be used fails the start (one line); a lock that cannot be broken is a warning (the
     * first write then waits for the OSD to drop the dead client's watch, as without records).
     */
    private static RbdLockTakeover takeOverFromADeadPredecessor(RbdImageName name, Path lockDir, MemorySegment cluster,
                                                                MemorySegment image) throws IOException {
        String fsid = LibrbdLocks.clusterFsid(cluster);
        String addrs = LibrbdLocks.getAddrs(cluster);
        if (fsid == null || addrs == null) {
            LOG.warn("RBD image {}: librados gives no fsid or client address; a successor after a crash waits for the lock", name);
            return null;
        }
        RbdLockTakeover t = RbdLockTakeover.at(lockDir, fsid, name);
        try {
            String done = t.takeOver(() -> LibrbdLocks.lockOwners(image), owner -> LibrbdLocks.lockBreak(image, owner));
            if (done != null) {
                LOG.info("RBD image {}: {}", name, done);
            }
        } catch (IOException e) {
            LOG.warn("RBD image {}: {}; the first write waits until the OSD drops the dead client's watch", name, e.getMessage());
        }
        try {
            t.record(addrs);
        } catch (IOException e) {
            LOG.warn("RBD image {}: cannot record this backend's client in {} ({}); a successor after a crash waits for the lock",
                    name, t.dir(), e.toString());
            return null;
        }
        return t;
    }

    private static void set(Arena a, MemorySegment cluster, String option, String value) throws IOException {
        int r = Librbd.confSet(cluster, a.allocateFrom(option), a.allocateFrom(value));
        if (r < 0) {
            throw fail("cannot set " + option + " = " + value, r);
        }
    }

    /** What librbd or librados answered with {@code -errno}, as one line. */
    static IOException fail(String what, int negErrno) {
        return new IOException(what + ": " + Libc.strerror(-negErrno) + " (errno " + -negErrno + ")");
    }

    public RbdImageName name() {
        return name;
    }

    long imageAddress() {
        return imageAddress;
    }

    MemorySegment image() {
        return image;
    }

    /** The eventfd librbd signals (the queue's completion fd when it collects its own). */
    EventFd events() {
        return events;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public long refreshSize() throws IOException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sz = a.allocate(ValueLayout.JAVA_LONG);
            int r = Librbd.getSize(image, sz);
            if (r < 0) {
                throw fail("cannot read the size of " + name, r);
            }
            size = sz.get(ValueLayout.JAVA_LONG, 0) & ~511L;
            return size;
        }
    }

    /** {@code r} runs (on a thread of this backend) when the image's size changed; the device announces it. */
    @Override
    public void watchResize(Runnable r) {
        this.resizeListener = r;
    }

    private void watchSize(long millis) {
        while (!closed) {
            try {
                Thread.sleep(millis);
            } catch (InterruptedException e) {
                return;
            }
            if (closed) {
                return;
            }
            long before = size;
            try (Arena a = Arena.ofConfined()) {
                MemorySegment sz = a.allocate(ValueLayout.JAVA_LONG);
                if (closed || Librbd.getSize(image, sz) < 0) {
                    continue;
                }
                long now = sz.get(ValueLayout.JAVA_LONG, 0) & ~511L;
                Runnable l = resizeListener;
                if (now != before && l != null) {
                    LOG.info("RBD image {} was resized from {} to {} bytes", name, before, now);
                    try {
                        l.run();
                    } catch (RuntimeException e) {
                        LOG.warn("RBD image {}: announcing the resize failed: {}", name, e.toString());
                    }
                }
            }
        }
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    /** Offered as write-back (CONFIG_WCE, FLUSH forwarded), as qemu-storage-daemon offers an RBD export. */
    @Override
    public boolean volatileCache() {
        return true;
    }

    // ---- the synchronous form (InlineQueueIo, tests) ----

    private static long address(MemorySegment mem, long memOffset, long length) {
        return mem.asSlice(memOffset, length).address();
    }

    @Override
    public void read(long offset, MemorySegment mem, long memOffset, long length) throws IOException {
        long done = 0;
        while (done < length) {
            long n = Librbd.read(image, offset + done, length - done, address(mem, memOffset + done, length - done));
            if (n < 0) {
                throw fail("rbd_read at byte " + (offset + done), (int) n);
            }
            if (n == 0) {
                mem.asSlice(memOffset + done, length - done).fill((byte) 0); // past a shrunken end
                return;
            }
            done += n;
        }
    }

    @Override
    public void write(long offset, MemorySegment mem, long memOffset, long length) throws IOException {
        long n = Librbd.write(image, offset, length, address(mem, memOffset, length));
        if (n < 0) {
            throw fail("rbd_write at byte " + offset, (int) n);
        }
        if (n != length) {
            throw new IOException("rbd_write at byte " + offset + " wrote " + n + " of " + length + " bytes");
        }
    }

    @Override
    public void flush() throws IOException {
        int r = Librbd.flush(image);
        if (r < 0) {
            throw fail("rbd_flush", r);
        }
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        int r = Librbd.discard(image, offset, length);
        if (r < 0) {
            throw fail("rbd_discard at byte " + offset, r);
        }
    }

    @Override
    public void writeZeroes(long offset, long length, boolean unmap) throws IOException {
        long r = Librbd.writeZeroes(image, offset, length, unmap ? 0 : Librbd.RBD_WRITE_ZEROES_FLAG_THICK_PROVISION);
        if (r < 0) {
            throw fail("rbd_write_zeroes at byte " + offset, (int) r);
        }
    }

    // ---- queues ----

    /** A queue's channel: see {@link RbdChannels#open}. */
    @Override
    public BlockQueueIo openQueueIo(int depth) throws IOException {
        return channels.open(depth);
    }

    /** Where the queues' channels are kept and their completions routed. */
    RbdChannels channels() {
        return channels;
    }

    @Override
    public String describe() {
        return "RBD image " + name + (readOnly ? " (read-only)" : "") + ", " + size + " bytes";
    }

    @Override
    public void close() throws IOException {
        if (!channels.close()) {
            return;
        }
        closed = true;
        if (resizeWatch != null) {
            resizeWatch.interrupt();
            joinQuietly(resizeWatch);
        }
        channels.stopRouter();
        int r = Librbd.close(image);
        if (r < 0) {
            LOG.warn("closing RBD image {}: {}", name, Libc.strerror(-r));
        }
        if (lockRecord != null) {
            lockRecord.forget(); // the lock went with the image
        }
        Librbd.ioctxDestroy(ioctx);
        Librbd.shutdown(cluster);
        events.close();
        arena.close();
    }

    static void joinQuietly(Thread t) {
        try {
            t.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
