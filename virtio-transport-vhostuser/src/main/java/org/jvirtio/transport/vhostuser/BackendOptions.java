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
 */
public record BackendOptions(boolean allowUnsealedMemory) {
    public static final BackendOptions DEFAULT = new BackendOptions(false);
}
