package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.linux.Libc;

/**
 * The file descriptors that came with one message. A handler takes the ones it keeps; the
 * session closes the rest when the handler is done ({@link #closeUntaken()}), whatever happened.
 */
final class MessageFds {
    private final int[] fds;

    MessageFds(int[] fds) {
        this.fds = fds;
    }

    int count() {
        return fds.length;
    }

    /** Takes fd {@code i}: from now on the caller owns it. */
    int take(int i) {
        int fd = fds[i];
        if (fd < 0) {
            throw new IllegalStateException("fd " + i + " taken twice");
        }
        fds[i] = -1;
        return fd;
    }

    /** Closes every fd not taken. */
    void closeUntaken() {
        for (int i = 0; i < fds.length; i++) {
            if (fds[i] >= 0) {
                Libc.closeQuietly(fds[i]);
                fds[i] = -1;
            }
        }
    }
}
