package org.jvirtio.api;

import java.lang.foreign.MemorySegment;

/**
 * One contiguous range of guest physical memory and where it lives in this process.
 *
 * @param guestAddress guest physical address of the first byte
 * @param size         length in bytes (64-bit; no 2 GiB limit)
 * @param userAddress  the frontend's (VMM's) virtual address of the first byte; vhost-user
 *                     gives vring addresses in this space. Equal to {@code guestAddress}
 *                     where there is no frontend.
 * @param mapping      the host mapping holding the bytes
 * @param mappingOffset offset of the first byte inside {@code mapping}
 */
public record GuestRegion(long guestAddress, long size, long userAddress, MemoryMapping mapping, long mappingOffset) {
    public GuestRegion {
        if (size <= 0) {
            throw new IllegalArgumentException("region size must be positive: " + Long.toUnsignedString(size));
        }
        if (Long.compareUnsigned(guestAddress + size - 1, guestAddress) < 0) {
            throw new IllegalArgumentException("region [0x" + Long.toHexString(guestAddress) + ", +" + size + ") wraps around 2^64");
        }
        if (Long.compareUnsigned(userAddress + size - 1, userAddress) < 0) {
            throw new IllegalArgumentException("region user address 0x" + Long.toHexString(userAddress) + " + " + size + " wraps around 2^64");
        }
        if (mappingOffset < 0 || mappingOffset > mapping.size() || size > mapping.size() - mappingOffset) {
            throw new IllegalArgumentException("region of " + size + " bytes at offset " + mappingOffset
                    + " does not fit its mapping of " + mapping.size() + " bytes");
        }
    }

    /** A region that covers a whole mapping, with user address = guest address. */
    public static GuestRegion of(long guestAddress, MemoryMapping mapping) {
        return new GuestRegion(guestAddress, mapping.size(), guestAddress, mapping, 0);
    }

    /** The host bytes of this region. */
    public MemorySegment segment() {
        return mapping.segment().asSlice(mappingOffset, size);
    }

    /** Exclusive end (unsigned; may be 0 when the region ends at 2^64). */
    public long guestEnd() {
        return guestAddress + size;
    }

    /** Whether the guest range [gpa, gpa+len) lies inside this region (unsigned arithmetic). */
    public boolean containsGuest(long gpa, long len) {
        long rel = gpa - guestAddress;
        return Long.compareUnsigned(rel, size) < 0 && Long.compareUnsigned(len, size - rel) <= 0;
    }

    boolean overlapsGuest(GuestRegion o) {
        return Long.compareUnsigned(guestAddress, o.guestAddress + o.size - 1) <= 0
                && Long.compareUnsigned(o.guestAddress, guestAddress + size - 1) <= 0;
    }

    boolean overlapsUser(GuestRegion o) {
        return Long.compareUnsigned(userAddress, o.userAddress + o.size - 1) <= 0
                && Long.compareUnsigned(o.userAddress, userAddress + size - 1) <= 0;
    }
}
