package org.jvirtio.transport.vhostuser;

import java.util.List;

import org.jvirtio.transport.vhostuser.VhostUserCodec.Config;
import org.jvirtio.transport.vhostuser.VhostUserCodec.MemRegion;
import org.jvirtio.transport.vhostuser.VhostUserCodec.VringAddr;

/**
 * A front-end request, decoded and checked in one place ({@link VhostUserCodec#decode}): one
 * record per message kind, applied by the session with an exhaustive switch, so that no handler
 * looks at bytes and a new message is a compile error until it is handled. Values that need the
 * device or the session's state to judge (a queue index, an address in guest memory) are
 * checked where they are applied.
 *
 * <p>File descriptors travel in a {@link MessageFds}: what a handler does not take is closed
 * after it ran, on every path.
 */
sealed interface FrontendRequest {
    record GetFeatures() implements FrontendRequest {
    }

    record SetFeatures(long features) implements FrontendRequest {
    }

    record SetOwner() implements FrontendRequest {
    }

    /** RESET_OWNER (deprecated) and RESET_DEVICE. */
    record ResetDevice() implements FrontendRequest {
    }

    record GetProtocolFeatures() implements FrontendRequest {
    }

    record SetProtocolFeatures(long features) implements FrontendRequest {
    }

    record GetQueueNum() implements FrontendRequest {
    }

    /** SEND_RARP: announce this MAC address (48 bits) on the device's network. */
    record SendRarp(long mac) implements FrontendRequest {
    }

    record GetMaxMemSlots() implements FrontendRequest {
    }

    /** The regions and one fd per region, in order. */
    record SetMemTable(List<MemRegion> regions, MessageFds fds) implements FrontendRequest {
    }

    record AddMemReg(MemRegion region, MessageFds fds) implements FrontendRequest {
    }

    record RemMemReg(MemRegion region) implements FrontendRequest {
    }

    record SetVringNum(int index, int num) implements FrontendRequest {
    }

    record SetVringAddr(VringAddr addr) implements FrontendRequest {
    }

    /** {@code base} fits 16 bits (checked). */
    record SetVringBase(int index, int base) implements FrontendRequest {
    }

    record GetVringBase(int index) implements FrontendRequest {
    }

    /** Which eventfd of a queue SET_VRING_KICK / _CALL / _ERR sets. */
    enum VringFdKind {
        KICK, CALL, ERR
    }

    /** {@code fds} holds the eventfd, or nothing when the front-end sent NOFD. */
    record SetVringFd(VringFdKind kind, int index, MessageFds fds) implements FrontendRequest {
        boolean noFd() {
            return fds.count() == 0;
        }
    }

    record SetVringEnable(int index, boolean enable) implements FrontendRequest {
    }

    record SetBackendReqFd(MessageFds fds) implements FrontendRequest {
    }

    record GetConfig(Config config) implements FrontendRequest {
    }

    record SetConfig(Config config) implements FrontendRequest {
    }

    /** {@code status} fits 8 bits (checked). */
    record SetStatus(int status) implements FrontendRequest {
    }

    record GetStatus() implements FrontendRequest {
    }

    /** A request jvirtio does not implement: refused, never silently accepted. */
    /** GET_INFLIGHT_FD: the front-end's queue count and size; the backend makes the region. */
    record GetInflightFd(int numQueues, int queueSize) implements FrontendRequest {
    }

    /** SET_INFLIGHT_FD: the region (one fd) the front-end kept, to be mapped and taken over. */
    record SetInflightFd(long mmapSize, long mmapOffset, int numQueues, int queueSize, MessageFds fds) implements FrontendRequest {
    }

    /** SET_LOG_BASE with LOG_SHMFD: the dirty log's fd, size and offset. */
    record SetLogBase(long mmapSize, long mmapOffset, MessageFds fds) implements FrontendRequest {
    }

    /** SET_LOG_FD: an eventfd to tell the front-end the log changed (or none). */
    record SetLogFd(MessageFds fds) implements FrontendRequest {
    }

    record Unsupported(VhostUserRequest request) implements FrontendRequest {
    }
}
