package org.jvirtio.transport.vhostuser;

import java.lang.foreign.MemorySegment;

import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.ring.PackedRingLayout;
import org.jvirtio.ring.RingQueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The inflight region of one connection (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD): shared memory,
 * made by the backend at GET_INFLIGHT_FD and kept by the front-end, which hands it to every
 * backend after it (SET_INFLIGHT_FD) so that one started after a crash resubmits what its
 * predecessor never completed. One region per queue, back to back, in the layout of the
 * negotiated rings: {@code SplitInflight}'s or {@code PackedInflight}'s (a packed queue's part
 * is twice as large). The layout is known when a ring starts; the whole region the front-end
 * gave is mapped (up to the packed size) so that either fits. Mapped for as long as the session
 * holds it; replaced only while no ring runs.
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

    /** Bytes a region for {@code numQueues} queues of {@code queueSize} entries takes, packed or split. */
    static long size(int numQueues, int queueSize, boolean packed) {
        return numQueues * RingQueue.inflightRegionSize(packed, queueSize);
    }

    /**
     * The region's queue size is the most entries a ring may have, not a ring's size: any in
     * [1, 32768] (QEMU asks with its queue-size, 1000 say, for packed rings; and asks before
     * firmware such as SeaBIOS, which does not take packed rings, runs split ones smaller).
     */
    static void check(String name, int numQueues, int queueSize, int deviceQueues) throws VhostUserProtocolException {
        if (numQueues < 1 || numQueues > deviceQueues) {
            throw new VhostUserProtocolException(name + ": " + numQueues + " queues, the device has " + deviceQueues);
        }
        if (queueSize < 1 || queueSize > PackedRingLayout.MAX_SIZE) {
            throw new VhostUserProtocolException(name + ": queue size " + queueSize + " is not in [1, " + PackedRingLayout.MAX_SIZE + "]");
        }
    }

    /**
     * GET_INFLIGHT_FD: a zeroed memfd of the spec's size, sealed against shrinking and growing.
     *
     * @return the fd (the caller sends it and closes it)
     */
    static int create(int numQueues, int queueSize, boolean packed) throws ErrnoException {
        int fd = Libc.memfdCreate("jvirtio-inflight");
        try {
            Libc.ftruncate(fd, size(numQueues, queueSize, packed));
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
            // Either layout's: the rings' is known when they start (queue() checks it fits).
            long need = size(s.numQueues(), s.queueSize(), false);
            if (s.mmapSize() < need || s.mmapOffset() < 0 || s.mmapOffset() + s.mmapSize() < 0) {
                throw new VhostUserProtocolException(name + ": region of " + Long.toUnsignedString(s.mmapSize()) + " bytes at offset "
                        + Long.toUnsignedString(s.mmapOffset()) + "; " + s.numQueues() + " queues of " + s.queueSize() + " need " + need);
            }
            long map = Math.min(s.mmapSize(), size(s.numQueues(), s.queueSize(), true));
            MemoryMapping mapping = SharedFiles.mapSealed(name, fd, s.mmapOffset(), map, allowUnsealed, "the inflight region's file");
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
    MemorySegment queue(int index, int size, boolean packed) {
        if (index >= numQueues) {
            return null;
        }
        long bytes = RingQueue.inflightRegionSize(packed, queueSize);
        if (numQueues * bytes > mapping.segment().byteSize()) {
            if (!warnedSize) {
                warnedSize = true;
                LOG.warn("vhost-user: the inflight region's {} bytes are too few for {} {} queues of {}: their requests are not tracked",
                        mapping.segment().byteSize(), numQueues, packed ? "packed" : "split", queueSize);
            }
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
