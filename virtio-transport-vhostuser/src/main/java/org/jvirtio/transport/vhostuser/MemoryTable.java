package org.jvirtio.transport.vhostuser;

import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.transport.vhostuser.VhostUserCodec.MemRegion;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.MAX_MEM_SLOTS;

/**
 * The guest memory of one connection: SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG map (and
 * unmap) the front-end's regions. Each method builds the next {@link GuestMemory} without
 * installing it; the session installs it with {@link #install} once the rings are stopped, and the
 * old memory is released then (mappings both share stay mapped). Control thread only.
 */
final class MemoryTable implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MemoryTable.class);

    private final boolean allowUnsealed;
    private GuestMemory memory = GuestMemory.empty();
    private boolean warnedUnsealable;

    /** @param allowUnsealed accept files that cannot be sealed against shrinking ({@link BackendOptions}) */
    MemoryTable(boolean allowUnsealed) {
        this.allowUnsealed = allowUnsealed;
    }

    GuestMemory memory() {
        return memory;
    }

    /** Makes {@code next} the memory and releases the previous one. */
    void install(GuestMemory next) {
        GuestMemory old = memory;
        memory = next;
        old.release();
    }

    /** SET_MEM_TABLE: a new memory of exactly these regions. */
    GuestMemory table(String name, List<MemRegion> regions, MessageFds fds) throws VhostUserProtocolException {
        List<GuestRegion> mapped = new ArrayList<>();
        try {
            for (int i = 0; i < regions.size(); i++) {
                mapped.add(map(name, regions.get(i), fds.take(i)));
            }
            try {
                return GuestMemory.of(mapped);
            } catch (IllegalArgumentException e) {
                throw new VhostUserProtocolException(name + ": " + e.getMessage());
            }
        } finally {
            // GuestMemory.of retained what it keeps; drop the creation references.
            for (GuestRegion r : mapped) {
                r.mapping().release();
            }
        }
    }

    /** ADD_MEM_REG: the memory with one more region. */
    GuestMemory with(String name, MemRegion r, MessageFds fds) throws VhostUserProtocolException {
        if (memory.regionCount() >= MAX_MEM_SLOTS) {
            throw new VhostUserProtocolException(name + ": all " + MAX_MEM_SLOTS + " memory slots are in use");
        }
        GuestRegion region = map(name, r, fds.take(0));
        try {
            return memory.withRegion(region);
        } catch (IllegalArgumentException e) {
            throw new VhostUserProtocolException(name + ": " + e.getMessage());
        } finally {
            region.mapping().release();
        }
    }

    /** REM_MEM_REG: the memory without the region the front-end names (its fd, if any, is not needed). */
    GuestMemory without(String name, MemRegion r) throws VhostUserProtocolException {
        for (GuestRegion g : memory.regions()) {
            if (g.guestAddress() == r.guestAddress() && g.size() == r.size() && g.userAddress() == r.userAddress()) {
                return memory.withoutRegion(r.guestAddress(), r.size());
            }
        }
        throw new VhostUserProtocolException(name + ": no region at guest 0x" + Long.toHexString(r.guestAddress())
                + " of size 0x" + Long.toHexString(r.size()) + " and user address 0x" + Long.toHexString(r.userAddress()));
    }

    /** Maps one region; the fd is closed once mapped (or refused). */
    private GuestRegion map(String name, MemRegion r, int fd) throws VhostUserProtocolException {
        try {
            if (r.size() <= 0) {
                throw new VhostUserProtocolException(name + ": region at guest 0x" + Long.toHexString(r.guestAddress())
                        + " has size " + Long.toUnsignedString(r.size()));
            }
            if (r.mmapOffset() < 0 || r.mmapOffset() + r.size() < 0) {
                throw new VhostUserProtocolException(name + ": mmap offset 0x" + Long.toHexString(r.mmapOffset()) + " + size overflows");
            }
            // Seal first, then check the size: a front-end can no longer shrink it under us.
            sealAgainstShrinking(name, fd);
            long fileSize = Libc.fileSize(fd);
            if (fileSize < r.mmapOffset() + r.size()) {
                // Touching a mapping past the end of its file raises SIGBUS: refuse it up front.
                throw new VhostUserProtocolException(name + ": region [offset 0x" + Long.toHexString(r.mmapOffset())
                        + ", +0x" + Long.toHexString(r.size()) + ") runs past the end of its file (" + fileSize + " bytes)");
            }
            MemoryMapping mapping = MemoryMapping.map(fd, r.mmapOffset(), r.size());
            try {
                return new GuestRegion(r.guestAddress(), r.size(), r.userAddress(), mapping, 0);
            } catch (IllegalArgumentException e) {
                mapping.release();
                throw new VhostUserProtocolException(name + ": " + e.getMessage());
            }
        } catch (ErrnoException e) {
            throw new VhostUserProtocolException(name + ": cannot map region at guest 0x" + Long.toHexString(r.guestAddress()) + ": " + e.getMessage());
        } finally {
            UnixSocket.closeQuietly(fd);
        }
    }

    /**
     * A front-end that shrinks the file behind a region after we mapped it would make our next
     * access to it fault (SIGBUS, which the JVM turns into an asynchronous InternalError). Where
     * the file allows it (a memfd created with MFD_ALLOW_SEALING and not sealed against more
     * seals) we add F_SEAL_SHRINK, so the shrink fails instead; QEMU's memory-backend-memfd
     * already seals by default (seal=on). Files that cannot be sealed (hugetlbfs, plain tmpfs, a
     * memfd with F_SEAL_SEAL) are refused, unless the operator allowed them
     * ({@link BackendOptions#allowUnsealedMemory}): then they are used with a warning, and a fault
     * is contained where it happens (the ring breaks, or the connection closes).
     */
    private void sealAgainstShrinking(String name, int fd) throws VhostUserProtocolException {
        if (Seals.sealAgainstShrinking(fd)) {
            return;
        }
        if (!allowUnsealed) {
            throw new VhostUserProtocolException(name + ": a guest memory file cannot be sealed against shrinking (plain tmpfs or"
                    + " hugetlbfs, or a memfd without sealing); a front-end that truncated it would make the backend fault."
                    + " Share memory-backend-memfd (QEMU seals it), or allow such files with --allow-unsealed-memory");
        }
        if (!warnedUnsealable) {
            warnedUnsealable = true;
            LOG.warn("vhost-user: {}: a guest memory file cannot be sealed against shrinking (allowed by"
                    + " --allow-unsealed-memory); a front-end that truncates it makes the backend fault", name);
        }
    }

    /** Releases the memory (after every ring stopped). */
    @Override
    public void close() {
        install(GuestMemory.empty());
    }
}
