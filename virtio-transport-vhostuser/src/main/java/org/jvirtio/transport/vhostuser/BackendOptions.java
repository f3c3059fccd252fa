package org.jvirtio.transport.vhostuser;

/**
 * How a {@link VhostUserBackend} treats what the operator must decide.
 *
 * @param allowUnsealedMemory accept guest memory files that cannot be sealed against shrinking
 *                            (plain tmpfs or hugetlbfs files, memfds created without sealing, as
 *                            QEMU's {@code memory-backend-file} and {@code memory-backend-memfd,seal=off}
 *                            share). A front-end that truncates such a file makes the backend's
 *                            next access fault; the backend contains the fault (the queue breaks
 *                            or the connection closes), but the guest loses its device. Off by
 *                            default: such files are refused with a line naming this option.
 * @param drainLimit          how long stopping a ring (GET_VRING_BASE, a memory change, a reset,
 *                            a disconnect) waits for its requests in flight before it gives up
 *                            on them: the ring is then handed back without them (the driver never
 *                            sees them complete) so that the control loop, and QEMU waiting for
 *                            its reply, go on. The storage finishes them in the background.
 * @param offerDirtyLog       offer VHOST_F_LOG_ALL and PROTOCOL_F_LOG_SHMFD (dirty logging, so that
 *                            QEMU can live-migrate the VM). On by default; {@code -Djvirtio.dirty_log=off}
 *                            turns it off for the runner (QEMU then refuses to migrate: "vhost
 *                            lacks VHOST_F_LOG_ALL feature").
 */
public record BackendOptions(boolean allowUnsealedMemory, java.time.Duration drainLimit, boolean offerDirtyLog) {
    public static final BackendOptions DEFAULT = new BackendOptions(false);

    public BackendOptions {
        if (drainLimit.isNegative()) {
            throw new IllegalArgumentException("negative drain limit: " + drainLimit);
        }
    }

    public BackendOptions(boolean allowUnsealedMemory) {
        this(allowUnsealedMemory, org.jvirtio.host.DeviceQueues.DEFAULT_DRAIN_LIMIT);
    }

    public BackendOptions(boolean allowUnsealedMemory, java.time.Duration drainLimit) {
        this(allowUnsealedMemory, drainLimit, !"off".equals(System.getProperty("jvirtio.dirty_log")));
    }
}
