package org.jvirtio.ring;

import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Memory layout of a split virtqueue (VIRTIO 1.3, 2.7), all fields little-endian.
 *
 * <pre>
 * Descriptor table, 16-byte aligned, size * 16 bytes (2.7.5):
 *   +0  le64 addr      guest physical address of the buffer
 *   +8  le32 len
 *   +12 le16 flags     NEXT=1, WRITE=2, INDIRECT=4
 *   +14 le16 next
 *
 * Available ring, 2-byte aligned, 6 + 2 * size bytes (2.7.6), written by the driver:
 *   +0        le16 flags       NO_INTERRUPT=1
 *   +2        le16 idx         free-running; the driver's next slot
 *   +4        le16 ring[size]  head descriptor ids
 *   +4+2*size le16 used_event  (EVENT_IDX only) "interrupt me once used->idx passes this"
 *
 * Used ring, 4-byte aligned, 6 + 8 * size bytes (2.7.8), written by the device:
 *   +0        le16 flags       NO_NOTIFY=1
 *   +2        le16 idx         free-running; the device's next slot
 *   +4        struct { le32 id; le32 len; } ring[size]
 *   +4+8*size le16 avail_event (EVENT_IDX only) "kick me once avail->idx passes this"
 * </pre>
 */
public final class SplitRingLayout {
    private SplitRingLayout() {
    }

    static {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            // Ring indices are accessed with native-order VarHandles for acquire/release.
            throw new ExceptionInInitializerError("jvirtio's split ring needs a little-endian host");
        }
    }

    public static final int MAX_SIZE = 32768;

    public static final int DESC_SIZE = 16;
    public static final int DESC_ADDR = 0;
    public static final int DESC_LEN = 8;
    public static final int DESC_FLAGS = 12;
    public static final int DESC_NEXT = 14;

    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;

    public static final int AVAIL_FLAGS = 0;
    public static final int AVAIL_IDX = 2;
    public static final int AVAIL_RING = 4;
    public static final int AVAIL_F_NO_INTERRUPT = 1;

    public static final int USED_FLAGS = 0;
    public static final int USED_IDX = 2;
    public static final int USED_RING = 4;
    public static final int USED_ELEM_SIZE = 8;
    public static final int USED_F_NO_NOTIFY = 1;

    public static final int DESC_ALIGN = 16;
    public static final int AVAIL_ALIGN = 2;
    public static final int USED_ALIGN = 4;

    /**
     * Ordered access to a 16-bit ring index in a mapped segment: coordinates
     * {@code (MemorySegment, long offset)}. Native order, which {@link SplitRingLayout} checked to
     * be little-endian.
     */
    static final VarHandle U16 = ValueLayout.JAVA_SHORT.varHandle();

    public static long descTableBytes(int size) {
        return (long) size * DESC_SIZE;
    }

    /** Bytes of the available ring including used_event. */
    public static long availBytes(int size) {
        return 6L + 2L * size;
    }

    /** Bytes of the used ring including avail_event. */
    public static long usedBytes(int size) {
        return 6L + (long) USED_ELEM_SIZE * size;
    }

    public static long availUsedEventOffset(int size) {
        return AVAIL_RING + 2L * size;
    }

    public static long usedAvailEventOffset(int size) {
        return USED_RING + (long) USED_ELEM_SIZE * size;
    }

    /** Whether {@code size} is a legal split ring size: a power of two in [1, 32768]. */
    public static boolean isValidSize(int size) {
        return size > 0 && size <= MAX_SIZE && Integer.bitCount(size) == 1;
    }

    /**
     * A contiguous placement of the three parts starting at {@code base} (aligned to 16), the
     * used ring aligned to 4 (the legacy layout used 4096; modern drivers may place parts
     * anywhere).
     */
    public record Placement(long desc, long avail, long used, long end) {
    }

    public static Placement place(long base, int size) {
        long desc = align(base, DESC_ALIGN);
        long avail = desc + descTableBytes(size);
        long used = align(avail + availBytes(size), USED_ALIGN);
        return new Placement(desc, avail, used, used + usedBytes(size));
    }

    /** Rounds {@code v} up to a multiple of the power of two {@code a}. */
    public static long align(long v, long a) {
        return (v + a - 1) & -a;
    }

    /**
     * {@code vring_need_event} (VIRTIO 1.3, 2.7.10): whether moving an index from {@code oldIdx}
     * to {@code newIdx} crossed {@code eventIdx}, all modulo 2^16.
     */
    public static boolean needEvent(int eventIdx, int newIdx, int oldIdx) {
        return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }
}
