package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.RateLimitedLog;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The files a front-end shares with the backend (guest memory regions, the inflight region, the
 * dirty log), mapped only once the front-end can no longer shrink them: the one place the
 * seal-check-map sequence is written.
 *
 * <p>A front-end that shrank such a file after we mapped it would make our next access to it
 * fault (SIGBUS, which the JVM turns into an asynchronous InternalError). Where the file allows it
 * (a memfd created with MFD_ALLOW_SEALING and not sealed against more seals) we add
 * F_SEAL_SHRINK, so the shrink fails instead; QEMU's memory-backend-memfd already seals by default
 * (seal=on). Files that cannot be sealed (hugetlbfs, plain tmpfs, a memfd with F_SEAL_SEAL, as
 * DPDK shares) are refused, unless the operator allowed them
 * ({@link BackendOptions#allowUnsealedMemory}): then they are used with a warning, and a fault is
 * contained where it happens (the ring breaks, or the connection closes).
 */
final class SharedFiles {
    private static final Logger LOG = LoggerFactory.getLogger(SharedFiles.class);
    private static final RateLimitedLog UNSEALED = RateLimitedLog.perSecond(LOG);

    private SharedFiles() {
    }

    /**
     * Seals the file behind {@code fd} against shrinking (or refuses it), checks that
     * {@code [offset, offset + length)} lies inside it, and maps that range. The caller keeps the
     * fd and closes it.
     *
     * @param name          the request, for messages ("SET_MEM_TABLE")
     * @param allowUnsealed whether a file that cannot be sealed is used anyway
     * @param what          what the file holds, for messages ("a guest memory file")
     * @throws VhostUserProtocolException the file is refused (unsealable, too short) or cannot be mapped
     */
    static MemoryMapping mapSealed(String name, int fd, long offset, long length, boolean allowUnsealed, String what)
            throws VhostUserProtocolException {
        if (offset < 0 || length <= 0 || offset + length < 0) {
            throw new VhostUserProtocolException(name + ": " + what + ": " + Long.toUnsignedString(length) + " bytes at offset "
                    + Long.toUnsignedString(offset) + " cannot be mapped");
        }
        // Seal first, then check the size: the front-end can no longer shrink it under us.
        if (!sealAgainstShrinking(fd)) {
            if (!allowUnsealed) {
                throw new VhostUserProtocolException(name + ": " + what + " cannot be sealed against shrinking (plain tmpfs or"
                        + " hugetlbfs, or a memfd without sealing); a front-end that truncated it would make the backend fault."
                        + " Share memory-backend-memfd (QEMU seals it), or allow such files with --allow-unsealed-memory");
            }
            UNSEALED.warn("vhost-user: {}: {} cannot be sealed against shrinking (allowed by --allow-unsealed-memory); a front-end"
                    + " that truncates it makes the backend fault", name, what);
        }
        try {
            long fileSize = Libc.fileSize(fd);
            if (fileSize < offset + length) {
                // Touching a mapping past the end of its file raises SIGBUS: refused up front.
                throw new VhostUserProtocolException(name + ": " + what + " [offset 0x" + Long.toHexString(offset) + ", +0x"
                        + Long.toHexString(length) + ") runs past the end of its file (" + fileSize + " bytes)");
            }
            return MemoryMapping.map(fd, offset, length);
        } catch (ErrnoException e) {
            throw new VhostUserProtocolException(name + ": cannot map " + what + ": " + e.getMessage());
        }
    }

    /**
     * Makes sure the front-end can no longer shrink the file behind {@code fd}: true when it is
     * sealed against shrinking now (it was, or F_SEAL_SHRINK could be added), false when it cannot
     * be.
     */
    static boolean sealAgainstShrinking(int fd) {
        try {
            int seals = Libc.fcntl(fd, Libc.F_GET_SEALS, 0);
            if ((seals & Libc.F_SEAL_SHRINK) != 0) {
                return true;
            }
            if ((seals & Libc.F_SEAL_SEAL) == 0) {
                Libc.fcntl(fd, Libc.F_ADD_SEALS, Libc.F_SEAL_SHRINK);
                return true;
            }
        } catch (ErrnoException e) {
            // EINVAL: the file does not support seals
        }
        return false;
    }
}
