package org.jvirtio.ring;

/**
 * Memory layout of a packed virtqueue (VIRTIO 1.3, 2.8), all fields little-endian.
 *
 * <pre>
 * Descriptor ring (the descriptor area), 16-byte aligned, size * 16 bytes (2.8.13):
 *   +0  le64 addr      available: the buffer's guest address; used: unused
 *   +8  le32 len       available: the buffer's length; used: bytes the device wrote
 *   +12 le16 id        the buffer id, in the last descriptor of a chain
 *   +14 le16 flags     NEXT=1, WRITE=2, INDIRECT=4, AVAIL=1&lt;&lt;7, USED=1&lt;&lt;15
 *
 * Event suppression (2.8.14), 4-byte aligned, 4 bytes each: the driver area (written by the
 * driver: when the device interrupts) and the device area (written by the device: when the
 * driver kicks):
 *   +0  le16 off_wrap  bits 0-14: a ring position; bit 15: a wrap counter (flags DESC only)
 *   +2  le16 flags     ENABLE=0, DISABLE=1, DESC=2 (only with EVENT_IDX)
 * </pre>
 *
 * A descriptor is available when its AVAIL bit equals the device's wrap counter for its position
 * and its USED bit does not; the device marks it used by setting both to its own used wrap
 * counter. Both counters start at 1 and flip at the end of the ring. A queue of any size from 1
 * to 32768 is valid: the packed layout does not need a power of two.
 */
public final class PackedRingLayout {
    private PackedRingLayout() {
    }

    public static final int MAX_SIZE = 32768;

    public static final int DESC_SIZE = 16;
    public static final int DESC_ADDR = 0;
    public static final int DESC_LEN = 8;
    public static final int DESC_ID = 12;
    public static final int DESC_FLAGS = 14;

    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;
    public static final int DESC_F_AVAIL = 1 << 7;
    public static final int DESC_F_USED = 1 << 15;

    public static final int EVENT_OFF_WRAP = 0;
    public static final int EVENT_FLAGS = 2;
    public static final int EVENT_SIZE = 4;
    public static final int EVENT_F_ENABLE = 0;
    public static final int EVENT_F_DISABLE = 1;
    public static final int EVENT_F_DESC = 2;
    /** The wrap counter's bit in off_wrap (and in vhost-user's packed ring state). */
    public static final int WRAP_BIT = 1 << 15;

    public static final int DESC_ALIGN = 16;
    public static final int EVENT_ALIGN = 4;

    public static long ringBytes(int size) {
        return (long) size * DESC_SIZE;
    }

    /** Whether {@code size} is a legal packed ring size: 1 to 32768, any value. */
    public static boolean isValidSize(int size) {
        return size > 0 && size <= MAX_SIZE;
    }

    /** Whether a descriptor's {@code flags} say it is available for wrap counter {@code wrap}. */
    public static boolean isAvailable(int flags, boolean wrap) {
        // AVAIL equal to the wrap counter and USED its inverse: the two bits against the one
        // value the counter allows, one comparison.
        return (flags & (DESC_F_AVAIL | DESC_F_USED)) == availFlags(wrap);
    }

    /** Whether a descriptor's {@code flags} say it was used with wrap counter {@code wrap}. */
    public static boolean isUsed(int flags, boolean wrap) {
        return (flags & (DESC_F_AVAIL | DESC_F_USED)) == usedFlags(wrap);
    }

    /** The AVAIL and USED bits a driver sets to make a descriptor available with wrap counter {@code wrap}. */
    public static int availFlags(boolean wrap) {
        return wrap ? DESC_F_AVAIL : DESC_F_USED;
    }

    /** The AVAIL and USED bits a device sets to mark a descriptor used with wrap counter {@code wrap}. */
    public static int usedFlags(boolean wrap) {
        return wrap ? DESC_F_AVAIL | DESC_F_USED : 0;
    }

    /** A position and wrap counter as one 16-bit value (off_wrap, vhost-user's ring state). */
    public static int offWrap(int position, boolean wrap) {
        return position | (wrap ? WRAP_BIT : 0);
    }

    /**
     * A contiguous placement at {@code base}: the descriptor ring (aligned to 16), then the driver
     * area and the device area (4 bytes each, aligned to 4).
     */
    public record Placement(long desc, long driver, long device, long end) {
    }

    public static Placement place(long base, int size) {
        long desc = SplitRingLayout.align(base, DESC_ALIGN);
        long driver = SplitRingLayout.align(desc + ringBytes(size), EVENT_ALIGN);
        long device = driver + EVENT_SIZE;
        return new Placement(desc, driver, device, device + EVENT_SIZE);
    }

    /**
     * Whether using the descriptors from position {@code oldPos} up to (not including)
     * {@code newPos} passed the event position {@code eventOffWrap} (vring_packed_need_event):
     * positions are compared with their wrap counters, as indices modulo twice the ring size.
     *
     * @param size      the ring's size
     * @param newOffWrap the position and wrap counter after the descriptors used
     * @param oldOffWrap the position and wrap counter before them
     */
    public static boolean needEvent(int size, int eventOffWrap, int newOffWrap, int oldOffWrap) {
        int period = 2 * size;
        int e = extended(size, eventOffWrap);
        int n = extended(size, newOffWrap);
        int o = extended(size, oldOffWrap);
        return Math.floorMod(n - e - 1, period) < Math.floorMod(n - o, period);
    }

    /** A position and wrap counter as one index modulo {@code 2 * size} that only grows as the ring is used. */
    private static int extended(int size, int offWrap) {
        int pos = offWrap & ~WRAP_BIT;
        return (offWrap & WRAP_BIT) != 0 ? pos + size : pos;
    }
}
