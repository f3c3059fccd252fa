package org.jvirtio.transport.vhostuser;

import java.lang.foreign.MemorySegment;

import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.ring.SplitInflight;
import org.jvirtio.ring.SplitRingLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The inflight region of one connection (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD): shared memory,
 * made by the backend at GET_INFLIGHT_FD and kept by the front-end, which hands it to every
 * backend after it (SET_INFLIGHT_FD) so that one started after a crash resubmits what its
 * predecessor never completed. One {@link SplitInflight} region per queue, back to back. Mapped
 * for as long as the session holds it; replaced only while no ring runs.
 */
final class InflightRegion implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(InflightRegion.class);

    private final MemoryMapping mapping;
    private final int numQueues;
    private final int queueSize;
    private boolean warnedSize;

    private InflightRegion(MemoryMapping mapping, int numQueues, int queueSize) {
        this.mapping = mapping;
        this.numQueues = numQueues;
        this.queueSize = queueSize;
    }

    /** Bytes a region for {@code numQueues} queues of {@code queueSize} entries takes. */
    static long size(int numQueues, int queueSize) {
        return numQueues * SplitInflight.queueRegionSize(queueSize);
    }

    static void check(String name, int numQueues, int queueSize, int deviceQueues) throws VhostUserProtocolException {
        if (numQueues < 1 || numQueues > deviceQueues) {
            throw new VhostUserProtocolException(name + ": " + numQueues + " queues, the device has " + deviceQueues);
        }
        if (!SplitRingLayout.isValidSize(queueSize)) {
            throw new VhostUserProtocolException(name + ": queue size " + queueSize + " is not a power of two in [1, 32768]");
        }
    }

    /**
     * GET_INFLIGHT_FD: a zeroed memfd of the spec's size, sealed against shrinking and growing.
     *
     * @return the fd (the caller sends it and closes it)
     */
    static int create(int numQueues, int queueSize) throws ErrnoException {
        int fd = Libc.memfdCreate("jvirtio-inflight");
        try {
            Libc.ftruncate(fd, size(numQueues, queueSize));
            Libc.fcntl(fd, Libc.F_ADD_SEALS, Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL);
            return fd;
        } catch (ErrnoException e) {
            Libc.closeQuietly(fd);
            throw e;
        }
    }

    /**
     * SET_INFLIGHT_FD: maps the region the front-end kept, after checking its size and offset
     * against the queues it must hold and against the file. The fd is closed either way.
     */
    static InflightRegion map(String name, FrontendRequest.SetInflightFd s, int deviceQueues, boolean allowUnsealed)
            throws VhostUserProtocolException {
        int fd = s.fds().take(0);
        try {
            check(name, s.numQueues(), s.queueSize(), deviceQueues);
            long need = size(s.numQueues(), s.queueSize());
            if (s.mmapSize() < need || s.mmapOffset() < 0 || s.mmapOffset() + s.mmapSize() < 0) {
                throw new VhostUserProtocolException(name + ": region of " + Long.toUnsignedString(s.mmapSize()) + " bytes at offset "
                        + Long.toUnsignedString(s.mmapOffset()) + "; " + s.numQueues() + " queues of " + s.queueSize() + " need " + need);
            }
            MemoryMapping mapping = SharedFiles.mapSealed(name, fd, s.mmapOffset(), need, allowUnsealed, "the inflight region's file");
            return new InflightRegion(mapping, s.numQueues(), s.queueSize());
        } finally {
            Libc.closeQuietly(fd);
        }
    }

    /**
     * Queue {@code index}'s part for a ring of {@code size} entries (its {@link #queueSize}
     * entries may be more: a guest's driver can make its ring smaller than the queue size the
     * front-end asked for), or null when the region does not cover it.
     */
    MemorySegment queue(int index, int size) {
        if (index >= numQueues) {
            return null;
        }
        if (size > queueSize) {
            if (!warnedSize) {
                warnedSize = true;
                LOG.warn("vhost-user: queue {} has {} entries, the inflight region was made for {}: its requests are not tracked",
                        index, size, queueSize);
            }
            return null;
        }
        long bytes = SplitInflight.queueRegionSize(queueSize);
        return mapping.segment().asSlice(index * bytes, bytes);
    }

    int numQueues() {
        return numQueues;
    }

    int queueSize() {
        return queueSize;
    }

    @Override
    public void close() {
        mapping.release();
    }
}
