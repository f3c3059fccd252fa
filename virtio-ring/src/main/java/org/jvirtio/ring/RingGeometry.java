package org.jvirtio.ring;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestMemoryException;
import org.jvirtio.ring.RingViolation.Reason;

import static org.jvirtio.ring.SplitRingLayout.*;

/**
 * Where a ring of {@code size} entries lies in one {@link GuestMemory}, judged once: an instance
 * exists only once {@link #of} (split) or {@link #ofPacked} found the placement valid. Split
 * (VIRTIO 1.3, 2.7): the size a power of two up to 32768, the parts aligned to 16, 2 and 4 bytes.
 * Packed (2.8): any size from 1 to 32768, the descriptor ring aligned to 16, the two event
 * suppression areas to 4. Either way each part inside one guest memory region and the fields
 * accessed atomically at even host addresses. A transport judges the addresses the driver gave
 * when they arrive and hands the result to the queue's {@code activate}, which does not judge
 * them again. Valid only with the memory it was judged against.
 */
public final class RingGeometry {
    private final GuestMemory memory;
    private final int size;
    private final long desc;
    private final long avail;
    private final long used;
    private final boolean packed;

    private RingGeometry(GuestMemory memory, int size, long desc, long avail, long used, boolean packed) {
        this.memory = memory;
        this.size = size;
        this.desc = desc;
        this.avail = avail;
        this.used = used;
        this.packed = packed;
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
        return new RingGeometry(memory, size, desc, avail, used, false);
    }

    /**
     * Judges the placement of queue {@code queue}'s packed ring: the descriptor ring at
     * {@code desc}, the driver's event suppression area at {@code driver}, the device's at
     * {@code device}.
     *
     * @throws RingConfigurationException with the violation when the ring cannot live there
     */
    public static RingGeometry ofPacked(int queue, GuestMemory memory, int size, long desc, long driver, long device)
            throws RingConfigurationException {
        RingViolation bad = checkPacked(queue, memory, size, desc, driver, device);
        if (bad != null) {
            throw new RingConfigurationException(bad);
        }
        return new RingGeometry(memory, size, desc, driver, device, true);
    }

    /** As {@link #of} or {@link #ofPacked}. */
    public static RingGeometry of(int queue, GuestMemory memory, int size, long desc, long avail, long used, boolean packed)
            throws RingConfigurationException {
        return packed ? ofPacked(queue, memory, size, desc, avail, used) : of(queue, memory, size, desc, avail, used);
    }

    /** Why a packed ring cannot live at these addresses, or null when it can. */
    static RingViolation checkPacked(int queue, GuestMemory memory, int size, long descAddr, long driverAddr, long deviceAddr) {
        if (!PackedRingLayout.isValidSize(size)) {
            return new RingViolation(Reason.PACKED_SIZE_INVALID, queue, size, PackedRingLayout.MAX_SIZE, 0);
        }
        long[] addrs = {descAddr, driverAddr, deviceAddr};
        int[] aligns = {PackedRingLayout.DESC_ALIGN, PackedRingLayout.EVENT_ALIGN, PackedRingLayout.EVENT_ALIGN};
        long[] lens = {PackedRingLayout.ringBytes(size), PackedRingLayout.EVENT_SIZE, PackedRingLayout.EVENT_SIZE};
        for (int part = 0; part < 3; part++) {
            if ((addrs[part] & (aligns[part] - 1)) != 0) {
                return new RingViolation(Reason.RING_MISALIGNED, queue, addrs[part], aligns[part], RingViolation.PACKED_PARTS + part);
            }
        }
        for (int part = 0; part < 3; part++) {
            long host;
            try {
                host = memory.slice(addrs[part], lens[part]).address();
            } catch (GuestMemoryException e) {
                return new RingViolation(Reason.RING_OUTSIDE_MEMORY, queue, addrs[part], lens[part], RingViolation.PACKED_PARTS + part);
            }
            // Descriptor flags and the event fields are read with acquire; a used descriptor's len,
            // id and flags are written as one 64-bit release store: the ring at a host address
            // aligned to 8, the event areas to 2 (a region mapped at an odd offset is not).
            int hostAlign = part == 0 ? 8 : 2;
            if ((host & (hostAlign - 1)) != 0) {
                return new RingViolation(Reason.RING_HOST_MISALIGNED, queue, host, hostAlign, RingViolation.PACKED_PARTS + part);
            }
        }
        return null;
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

    /** Whether this is a packed ring's placement ({@link #ofPacked}). */
    public boolean packed() {
        return packed;
    }

    /** Guest address of the descriptor table (packed: the descriptor ring). */
    public long desc() {
        return desc;
    }

    /** Guest address of the available ring (the driver area; packed: the driver's event suppression). */
    public long avail() {
        return avail;
    }

    /** Guest address of the used ring (the device area; packed: the device's event suppression). */
    public long used() {
        return used;
    }

    @Override
    public String toString() {
        if (packed) {
            return "packed ring of " + size + " at desc 0x" + Long.toHexString(desc) + ", driver area 0x" + Long.toHexString(avail)
                    + ", device area 0x" + Long.toHexString(used);
        }
        return "ring of " + size + " at desc 0x" + Long.toHexString(desc) + ", avail 0x" + Long.toHexString(avail) + ", used 0x"
                + Long.toHexString(used);
    }
}
