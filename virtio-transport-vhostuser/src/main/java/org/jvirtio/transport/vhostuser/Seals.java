package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;

/** File seals on the front-end's shared files (guest memory, the inflight region). */
final class Seals {
    private Seals() {
    }

    /**
     * Makes sure the front-end can no longer shrink the file behind {@code fd}: true when it is
     * sealed against shrinking now (it was, or F_SEAL_SHRINK could be added), false when it cannot
     * be (hugetlbfs, plain tmpfs, a memfd created without sealing or with F_SEAL_SEAL).
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
