package org.jvirtio.api;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * The dirty page log of live migration (vhost-user.rst, "Migration"): a bitmap in memory shared
 * with the front-end, one bit per 4 KiB page of guest physical address space, that the device
 * sets for every page it writes while the front-end copies memory to the destination
 * ({@code log[page / 8] |= 1 << page % 8}). The front-end clears bits concurrently (an atomic
 * exchange per word as it syncs), so every set is an atomic OR, also for a bit that looks set.
 *
 * <p>The bitmap is addressed in 64-bit little-endian words (x86's order), which is the spec's
 * byte layout: page {@code p} is bit {@code p % 64} of word {@code p / 64}.
 */
public final class DirtyLog {
    public static final int PAGE_SHIFT = 12;
    private static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle();

    private final MemorySegment bitmap;
    private final long words;

    /** @param bitmap the mapped log, a multiple of 8 bytes, 8-byte aligned */
    public DirtyLog(MemorySegment bitmap) {
        if (bitmap.byteSize() % 8 != 0 || bitmap.address() % 8 != 0) {
            throw new IllegalArgumentException("a dirty log of " + bitmap.byteSize() + " bytes at 0x" + Long.toHexString(bitmap.address())
                    + " is not made of aligned 64-bit words");
        }
        this.bitmap = bitmap;
        this.words = bitmap.byteSize() / 8;
    }

    /** Pages the log covers (from guest address 0). */
    public long pages() {
        return words * 64;
    }

    /**
     * Marks every page {@code [gpa, gpa + len)} touches. Pages beyond the log are not marked (the
     * front-end sized it for all of guest memory; a device never writes past that).
     */
    public void mark(long gpa, long len) {
        if (len <= 0) {
            return;
        }
        long first = gpa >>> PAGE_SHIFT;
        long last = (gpa + len - 1) >>> PAGE_SHIFT;
        if (Long.compareUnsigned(last, first) < 0) {
            last = -1L >>> PAGE_SHIFT; // the range wrapped: to the top of the address space
        }
        for (long p = first; Long.compareUnsigned(p, last) <= 0; p++) {
            long w = p >>> 6;
            if (Long.compareUnsigned(w, words) >= 0) {
                return;
            }
            long bit = 1L << (p & 63);
            long off = w * 8;
            // Always the locked OR, never "skip when already set": x86 lets a plain load pass
            // our own earlier stores, so a read that sees the bit set could let the front-end
            // take the bit (its atomic exchange) and copy the page before the bytes the bit
            // stands for are visible. The locked OR is a full fence (as libvhost-user's).
            WORD.getAndBitwiseOr(bitmap, off, bit);
            if (p == -1L) {
                return;
            }
        }
    }

    /** Whether page {@code page} is marked (for tests). */
    public boolean isMarked(long page) {
        long w = page >>> 6;
        return Long.compareUnsigned(w, words) < 0 && (((long) WORD.getVolatile(bitmap, w * 8)) & (1L << (page & 63))) != 0;
    }
}
