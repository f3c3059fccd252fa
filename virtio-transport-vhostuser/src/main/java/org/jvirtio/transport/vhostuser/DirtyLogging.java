package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.DirtyLog;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.transport.vhostuser.FrontendRequest.SetLogBase;
import org.jvirtio.transport.vhostuser.FrontendRequest.SetLogFd;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The dirty log of one connection (VHOST_USER_PROTOCOL_F_LOG_SHMFD, vhost-user.rst "Migration"):
 * SET_LOG_BASE maps the log the front-end shares, SET_LOG_FD takes the eventfd it may be told
 * through; the rings mark the pages they write while VHOST_F_LOG_ALL is negotiated. Control
 * thread only; a log in use by running rings is swapped with them stopped ({@link Vrings#replaceDirtyLog}).
 */
final class DirtyLogging implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DirtyLogging.class);
    /** The most a dirty log may take: one bit per 4 KiB page of 32 TiB of guest memory. */
    static final long MAX_LOG_BYTES = 1L << 30;

    private final boolean allowUnsealed;
    /** The log the front-end shared, or null; in use while VHOST_F_LOG_ALL is negotiated. */
    private MemoryMapping mapping;
    private DirtyLog log;
    private EventFd logFd;

    /** @param allowUnsealed accept a log file that cannot be sealed against shrinking ({@link BackendOptions}) */
    DirtyLogging(boolean allowUnsealed) {
        this.allowUnsealed = allowUnsealed;
    }

    /** The shared log, or null before SET_LOG_BASE. */
    DirtyLog log() {
        return log;
    }

    /**
     * SET_LOG_BASE: maps the log (checked against its file and sealed against shrinking). The first
     * one is handed to the running rings as they run; one that replaces another is put in place
     * with the running rings stopped and started again around the swap, so that no queue thread
     * still marks the old mapping when it goes.
     */
    void setBase(String name, SetLogBase l, Vrings vrings) throws VhostUserProtocolException {
        int fd = l.fds().take(0);
        MemoryMapping next;
        try {
            if (l.mmapSize() <= 0 || l.mmapSize() > MAX_LOG_BYTES || l.mmapSize() % 8 != 0 || l.mmapOffset() < 0
                    || l.mmapOffset() % 8 != 0) {
                throw new VhostUserProtocolException(name + ": a dirty log of " + Long.toUnsignedString(l.mmapSize()) + " bytes at offset "
                        + Long.toUnsignedString(l.mmapOffset()) + " (64-bit words, at most " + MAX_LOG_BYTES + " bytes)");
            }
            next = SharedFiles.mapSealed(name, fd, l.mmapOffset(), l.mmapSize(), allowUnsealed, "the dirty log's file");
        } finally {
            Libc.closeQuietly(fd);
        }
        MemoryMapping old = mapping;
        Runnable install = () -> {
            mapping = next;
            log = new DirtyLog(next.segment());
        };
        if (old == null) {
            // The first log (a migration starting): nothing to retire, so the rings keep running
            // and take the log with their next used element.
            install.run();
            vrings.applyDirtyLog();
        } else {
            // A new log in place of one that queue threads may be marking (QEMU resizes it when
            // memory is added): the rings stop around the swap before the old one is unmapped.
            vrings.replaceDirtyLog(install);
            old.release();
        }
        LOG.info("vhost-user: dirty log of {} bytes shared (pages up to {} GiB)", l.mmapSize(), (l.mmapSize() * 8 * 4096) >> 30);
    }

    /** SET_LOG_FD: the eventfd (or none) the front-end gave. */
    void setFd(SetLogFd l) {
        if (logFd != null) {
            logFd.close();
            logFd = null;
        }
        if (l.fds().count() > 0) {
            logFd = EventFd.adopt(l.fds().take(0), true);
        }
    }

    /** Stops logging and releases the log (every ring stopped). */
    @Override
    public void close() {
        log = null;
        if (mapping != null) {
            mapping.release();
            mapping = null;
        }
        if (logFd != null) {
            logFd.close();
            logFd = null;
        }
    }
}
