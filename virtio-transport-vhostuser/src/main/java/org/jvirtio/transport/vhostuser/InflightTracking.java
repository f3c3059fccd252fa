package org.jvirtio.transport.vhostuser;

import java.lang.foreign.MemorySegment;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.transport.vhostuser.FrontendRequest.GetInflightFd;
import org.jvirtio.transport.vhostuser.FrontendRequest.SetInflightFd;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The inflight tracking of one connection (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, vhost-user.rst
 * "Inflight I/O tracking"): GET_INFLIGHT_FD makes a region the front-end keeps, SET_INFLIGHT_FD
 * hands one (ours, or a predecessor's after a crash) to this backend; each ring tracks its
 * requests in its part of it. Control thread only; replaced only while no ring runs.
 */
final class InflightTracking implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(InflightTracking.class);

    private final boolean allowUnsealed;
    private final int deviceQueues;
    /** The region in use (SET_INFLIGHT_FD), or null. */
    private InflightRegion region;

    /**
     * @param deviceQueues  the device's queue count: a region for more is refused
     * @param allowUnsealed accept a region file that cannot be sealed against shrinking
     */
    InflightTracking(int deviceQueues, boolean allowUnsealed) {
        this.deviceQueues = deviceQueues;
        this.allowUnsealed = allowUnsealed;
    }

    /**
     * GET_INFLIGHT_FD: a new zeroed region for the queues the front-end names, in the layout of
     * the negotiated rings ({@code packed}: QEMU sets the features first), sealed against
     * shrinking and growing, sent in the reply on {@code connFd} (and closed here).
     */
    void create(String name, GetInflightFd g, int connFd, boolean packed) throws VhostUserProtocolException, ErrnoException {
        InflightRegion.check(name, g.numQueues(), g.queueSize(), deviceQueues);
        int fd = InflightRegion.create(g.numQueues(), g.queueSize(), packed);
        try {
            byte[] reply = VhostUserCodec.encodeInflight(new VhostUserCodec.Inflight(InflightRegion.size(g.numQueues(), g.queueSize(), packed),
                    0, g.numQueues(), g.queueSize()));
            UnixSocket.send(connFd, VhostUserMessage.encode(VhostUserRequest.GET_INFLIGHT_FD.code(),
                    VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_REPLY, reply), new int[] {fd});
        } finally {
            Libc.closeQuietly(fd);
        }
    }

    /** SET_INFLIGHT_FD: maps the region the front-end kept, in place of any before it; no ring may run. */
    void take(String name, SetInflightFd s, boolean anyRunning) throws VhostUserProtocolException {
        if (anyRunning) {
            throw new VhostUserProtocolException(name + ": the inflight region changed while a ring runs");
        }
        InflightRegion next = InflightRegion.map(name, s, deviceQueues, allowUnsealed);
        close();
        region = next;
        LOG.info("vhost-user: inflight region for {} queues of {} entries taken over", next.numQueues(), next.queueSize());
    }

    /** Queue {@code index}'s part for a packed or split ring of {@code size} entries, or null (no region, or it does not cover it). */
    MemorySegment queue(int index, int size, boolean packed) {
        return region == null ? null : region.queue(index, size, packed);
    }

    /** Entries per queue of the region (its queue size, at least the ring's), or 0 without one. */
    int entries() {
        return region == null ? 0 : region.queueSize();
    }

    /** Releases the region (every ring stopped): a guest reset, or the end of the session. */
    @Override
    public void close() {
        if (region != null) {
            region.close();
            region = null;
        }
    }
}
