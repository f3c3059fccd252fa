package org.jvirtio.transport.vhostuser;

import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.transport.vhostuser.VhostUserCodec.MemRegion;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.MAX_MEM_SLOTS;

/**
 * The guest memory of one connection: SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG map (and
 * unmap) the front-end's regions. Each method builds the next {@link GuestMemory} without
 * installing it; the session installs it with {@link #install} once the rings are stopped, and the
 * old memory is released then (mappings both share stay mapped). Control thread only.
 */
final class MemoryTable implements AutoCloseable {
    private final boolean allowUnsealed;
    private GuestMemory memory = GuestMemory.empty();
    /**
     * Regions added more than once, with how many more times than once: QEMU's vhost-user-net
     * with several queue pairs runs one vhost device per pair on the one connection, and each
     * sends ADD_MEM_REG for every region (and REM_MEM_REG when one goes). A region is removed
     * when the last of them removes it.
     */
    private final java.util.Map<List<Long>, Integer> duplicates = new java.util.HashMap<>();

    /** @param allowUnsealed accept files that cannot be sealed against shrinking ({@link BackendOptions}) */
    MemoryTable(boolean allowUnsealed) {
        this.allowUnsealed = allowUnsealed;
    }

    GuestMemory memory() {
        return memory;
    }

    /** Makes {@code next} the memory and releases the previous one. */
    void install(GuestMemory next) {
        if (next == memory) {
            return;
        }
        GuestMemory old = memory;
        memory = next;
        old.release();
    }

    /** SET_MEM_TABLE: a new memory of exactly these regions. */
    GuestMemory table(String name, List<MemRegion> regions, MessageFds fds) throws VhostUserProtocolException {
        duplicates.clear();
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

    /**
     * ADD_MEM_REG: the memory with one more region; the memory as it is when the region is one it
     * has already (the same guest address, size and user address: another vhost device of the
     * same front-end adding it again; its fd is not mapped).
     */
    GuestMemory with(String name, MemRegion r, MessageFds fds) throws VhostUserProtocolException {
        if (has(r)) {
            Libc.closeQuietly(fds.take(0));
            duplicates.merge(key(r), 1, Integer::sum);
            return memory;
        }
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
        Integer more = duplicates.get(key(r));
        if (more != null) {
            if (more == 1) {
                duplicates.remove(key(r));
            } else {
                duplicates.put(key(r), more - 1);
            }
            return memory; // still added by another
        }
        for (GuestRegion g : memory.regions()) {
            if (g.guestAddress() == r.guestAddress() && g.size() == r.size() && g.userAddress() == r.userAddress()) {
                return memory.withoutRegion(r.guestAddress(), r.size());
            }
        }
        throw new VhostUserProtocolException(name + ": no region at guest 0x" + Long.toHexString(r.guestAddress())
                + " of size 0x" + Long.toHexString(r.size()) + " and user address 0x" + Long.toHexString(r.userAddress()));
    }

    private boolean has(MemRegion r) {
        for (GuestRegion g : memory.regions()) {
            if (g.guestAddress() == r.guestAddress() && g.size() == r.size() && g.userAddress() == r.userAddress()) {
                return true;
            }
        }
        return false;
    }

    private static List<Long> key(MemRegion r) {
        return List.of(r.guestAddress(), r.size(), r.userAddress());
    }

    /** Maps one region (sealed: see {@link SharedFiles}); the fd is closed once mapped (or refused). */
    private GuestRegion map(String name, MemRegion r, int fd) throws VhostUserProtocolException {
        try {
            if (r.size() <= 0) {
                throw new VhostUserProtocolException(name + ": region at guest 0x" + Long.toHexString(r.guestAddress())
                        + " has size " + Long.toUnsignedString(r.size()));
            }
            if (r.mmapOffset() < 0 || r.mmapOffset() + r.size() < 0) {
                throw new VhostUserProtocolException(name + ": mmap offset 0x" + Long.toHexString(r.mmapOffset()) + " + size overflows");
            }
            MemoryMapping mapping = SharedFiles.mapSealed(name, fd, r.mmapOffset(), r.size(), allowUnsealed, "a guest memory file");
            try {
                return new GuestRegion(r.guestAddress(), r.size(), r.userAddress(), mapping, 0);
            } catch (IllegalArgumentException e) {
                mapping.release();
                throw new VhostUserProtocolException(name + ": " + e.getMessage());
            }
        } finally {
            Libc.closeQuietly(fd);
        }
    }

    /** Releases the memory (after every ring stopped). */
    @Override
    public void close() {
        install(GuestMemory.empty());
    }
}
