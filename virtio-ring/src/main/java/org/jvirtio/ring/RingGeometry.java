package org.jvirtio.ring;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestMemoryException;
import org.jvirtio.ring.RingViolation.Reason;

import static org.jvirtio.ring.SplitRingLayout.*;

/**
 * Where a split ring of {@code size} entries lies in one {@link GuestMemory}, judged once: an
 * instance exists only once {@link #of} found the placement valid (VIRTIO 1.3, 2.7: the size a
 * power of two up to 32768, the parts aligned to 16, 2 and 4 bytes, each inside one guest memory
 * region, the indices at even host addresses). A transport judges the addresses the driver gave
 * when they arrive and hands the result to {@link SplitQueue#activate(RingGeometry, long, int, int)},
 * which does not judge them again. Valid only with the memory it was judged against.
 */
public final class RingGeometry {
    private final GuestMemory memory;
    private final int size;
    private final long desc;
    private final long avail;
    private final long used;

    private RingGeometry(GuestMemory memory, int size, long desc, long avail, long used) {
        this.memory = memory;
        this.size = size;
        this.desc = desc;
        this.avail = avail;
        this.used = used;
    }

    /**
     * Judges the placement of queue {@code queue}'s ring.
     *
     * @throws RingConfigurationException with the violation when the ring cannot live there
     */
    public static RingGeometry of(int queue, GuestMemory memory, int size, long desc, long avail, long used)
            throws RingConfigurationException {
        RingViolation bad = check(queue, memory, size, desc, avail, used);
        if (bad != null) {
            throw new RingConfigurationException(bad);
        }
        return new RingGeometry(memory, size, desc, avail, used);
    }

    /** Why the ring cannot live at these addresses, or null when it can: the one place ring geometry is judged. */
    static RingViolation check(int queue, GuestMemory memory, int size, long descAddr, long availAddr, long usedAddr) {
        if (!isValidSize(size)) {
            return new RingViolation(Reason.SIZE_INVALID, queue, size, MAX_SIZE, 0);
        }
        long[] addrs = {descAddr, availAddr, usedAddr};
        int[] aligns = {DESC_ALIGN, AVAIL_ALIGN, USED_ALIGN};
        long[] lens = {descTableBytes(size), availBytes(size), usedBytes(size)};
        for (int part = 0; part < 3; part++) {
            if ((addrs[part] & (aligns[part] - 1)) != 0) {
                return new RingViolation(Reason.RING_MISALIGNED, queue, addrs[part], aligns[part], part);
            }
        }
        long[] host = new long[3];
        for (int part = 0; part < 3; part++) {
            try {
                host[part] = memory.slice(addrs[part], lens[part]).address();
            } catch (GuestMemoryException e) {
                return new RingViolation(Reason.RING_OUTSIDE_MEMORY, queue, addrs[part], lens[part], part);
            }
        }
        // avail->idx and used->idx are read and written with acquire/release 16-bit accesses,
        // which need an even host address; a region mapped at an odd mmap_offset breaks that even
        // when the guest address is aligned.
        for (int part = 1; part < 3; part++) {
            if ((host[part] & 1) != 0) {
                return new RingViolation(Reason.RING_HOST_MISALIGNED, queue, host[part], 2, part);
            }
        }
        return null;
    }

    /** The memory this placement was judged against. */
    public GuestMemory memory() {
        return memory;
    }

    public int size() {
        return size;
    }

    /** Guest address of the descriptor table. */
    public long desc() {
        return desc;
    }

    /** Guest address of the available ring (the driver area). */
    public long avail() {
        return avail;
    }

    /** Guest address of the used ring (the device area). */
    public long used() {
        return used;
    }

    @Override
    public String toString() {
        return "ring of " + size + " at desc 0x" + Long.toHexString(desc) + ", avail 0x" + Long.toHexString(avail) + ", used 0x"
                + Long.toHexString(used);
    }
}
