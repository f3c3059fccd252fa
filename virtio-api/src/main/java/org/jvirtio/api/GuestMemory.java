package org.jvirtio.api;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The guest's memory as this process sees it: an immutable, sorted set of non-overlapping
 * {@link GuestRegion}s.
 *
 * <p>Every address here comes from the guest or the frontend and is untrusted: all arithmetic
 * is unsigned 64-bit, and a range with any byte outside every region is a
 * {@link GuestMemoryException}, never an access outside a mapping. A range may cross from one
 * region into the next (regions that are adjacent in guest physical space are usually separate
 * host mappings), so translation returns a list of segments, never a pointer with an assumed
 * length.
 *
 * <p>Life cycle: a new instance holds one reference; {@link #retain()} and {@link #release()}
 * count users (an in-flight request, a queue). The last release drops the instance's hold on
 * its {@link MemoryMapping}s, which unmap when no other {@code GuestMemory} shares them. A
 * memory-table change therefore builds a new instance while requests still in flight keep the
 * old one, and its mappings, alive.
 */
public final class GuestMemory {
    /** Little-endian layouts for virtio fields (VIRTIO 1.3, 1.4: all modern fields are little-endian). */
    public static final ValueLayout.OfShort LE_U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfInt LE_U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfLong LE_U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static final GuestMemory EMPTY = new GuestMemory(new GuestRegion[0]);

    private final GuestRegion[] regions;
    private final long[] starts;
    private final long[] sizes;
    private final MemorySegment[] segments;
    private final AtomicInteger refs = new AtomicInteger(1);

    private GuestMemory(GuestRegion[] sorted) {
        this.regions = sorted;
        this.starts = new long[sorted.length];
        this.sizes = new long[sorted.length];
        this.segments = new MemorySegment[sorted.length];
        for (int i = 0; i < sorted.length; i++) {
            starts[i] = sorted[i].guestAddress();
            sizes[i] = sorted[i].size();
            segments[i] = sorted[i].segment();
        }
    }

    /** Memory with no regions: every access fails. Needs no release. */
    public static GuestMemory empty() {
        return EMPTY;
    }

    /**
     * Builds guest memory from regions and retains each region's mapping.
     *
     * @throws IllegalArgumentException when regions overlap in guest or user address space
     */
    public static GuestMemory of(List<GuestRegion> regions) {
        GuestRegion[] sorted = regions.toArray(GuestRegion[]::new);
        Arrays.sort(sorted, Comparator.comparing(GuestRegion::guestAddress, Long::compareUnsigned));
        for (int i = 0; i < sorted.length; i++) {
            for (int j = i + 1; j < sorted.length; j++) {
                if (sorted[i].overlapsGuest(sorted[j])) {
                    throw new IllegalArgumentException("regions overlap in guest physical space: " + describe(sorted[i]) + " and " + describe(sorted[j]));
                }
                if (sorted[i].overlapsUser(sorted[j])) {
                    throw new IllegalArgumentException("regions overlap in frontend address space: user 0x"
                            + Long.toHexString(sorted[i].userAddress()) + " and 0x" + Long.toHexString(sorted[j].userAddress()));
                }
            }
        }
        int retained = 0;
        try {
            for (GuestRegion r : sorted) {
                r.mapping().retain();
                retained++;
            }
        } catch (RuntimeException e) {
            for (int i = 0; i < retained; i++) {
                sorted[i].mapping().release();
            }
            throw e;
        }
        return new GuestMemory(sorted);
    }

    public static GuestMemory of(GuestRegion... regions) {
        return of(List.of(regions));
    }

    private static String describe(GuestRegion r) {
        return "[0x" + Long.toHexString(r.guestAddress()) + ", +0x" + Long.toHexString(r.size()) + ")";
    }

    /** A new instance with one more region (vhost-user ADD_MEM_REG). This instance is unchanged. */
    public GuestMemory withRegion(GuestRegion region) {
        List<GuestRegion> all = new ArrayList<>(List.of(regions));
        all.add(region);
        return of(all);
    }

    /**
     * A new instance without the region that starts at {@code guestAddress} with {@code size}
     * bytes (vhost-user REM_MEM_REG), or null when there is no such region.
     */
    public GuestMemory withoutRegion(long guestAddress, long size) {
        List<GuestRegion> all = new ArrayList<>(regions.length);
        boolean found = false;
        for (GuestRegion r : regions) {
            if (!found && r.guestAddress() == guestAddress && r.size() == size) {
                found = true;
            } else {
                all.add(r);
            }
        }
        return found ? of(all) : null;
    }

    /** Adds a user; fails when this memory was already released. */
    public GuestMemory retain() {
        if (this == EMPTY) {
            return this;
        }
        while (true) {
            int n = refs.get();
            if (n <= 0) {
                throw new IllegalStateException("guest memory already released");
            }
            if (refs.compareAndSet(n, n + 1)) {
                return this;
            }
        }
    }

    /** Drops a user; the last one releases the mappings. */
    public void release() {
        if (this == EMPTY) {
            return;
        }
        int n = refs.decrementAndGet();
        if (n == 0) {
            for (GuestRegion r : regions) {
                r.mapping().release();
            }
        } else if (n < 0) {
            throw new IllegalStateException("guest memory released more often than retained");
        }
    }

    public int regionCount() {
        return regions.length;
    }

    public GuestRegion region(int index) {
        return regions[index];
    }

    public List<GuestRegion> regions() {
        return List.of(regions);
    }

    /** Total bytes in all regions. */
    public long totalSize() {
        long total = 0;
        for (long s : sizes) {
            total += s;
        }
        return total;
    }

    /**
     * Index of the region holding guest address {@code gpa}, or -1.
     * Binary search; no allocation.
     */
    public int findRegion(long gpa) {
        int lo = 0;
        int hi = starts.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            long rel = gpa - starts[mid];
            if (Long.compareUnsigned(gpa, starts[mid]) < 0) {
                hi = mid - 1;
            } else if (Long.compareUnsigned(rel, sizes[mid]) < 0) {
                return mid;
            } else {
                lo = mid + 1;
            }
        }
        return -1;
    }

    /** Host bytes of region {@code index} (no allocation). */
    public MemorySegment regionSegment(int index) {
        return segments[index];
    }

    /** Guest address where region {@code index} starts. */
    public long regionStart(int index) {
        return starts[index];
    }

    /** Bytes in region {@code index}. */
    public long regionSize(int index) {
        return sizes[index];
    }

    /** Whether every byte of [gpa, gpa+len) is in guest memory (possibly across regions). */
    public boolean contains(long gpa, long len) {
        if (len == 0) {
            return true;
        }
        if (Long.compareUnsigned(gpa + len - 1, gpa) < 0) {
            return false; // wraps around 2^64
        }
        long addr = gpa;
        long left = len;
        while (true) {
            int r = findRegion(addr);
            if (r < 0) {
                return false;
            }
            long avail = sizes[r] - (addr - starts[r]);
            if (Long.compareUnsigned(left, avail) <= 0) {
                return true;
            }
            addr += avail;
            left -= avail;
        }
    }

    /**
     * The host bytes of [gpa, gpa+len) when they lie in one region (rings must: VIRTIO 1.3 lays
     * each ring part out contiguously and every VMM maps it so).
     *
     * @throws GuestMemoryException when any byte is outside guest memory or the range crosses
     *                              regions
     */
    public MemorySegment slice(long gpa, long len) {
        int r = findRegion(gpa);
        if (r < 0 || Long.compareUnsigned(len, sizes[r] - (gpa - starts[r])) > 0) {
            throw new GuestMemoryException(r < 0 ? "address" : "range crosses a region boundary or ends outside memory", gpa, len);
        }
        return segments[r].asSlice(gpa - starts[r], len);
    }

    /** Translates a frontend (VMM) user address to a guest physical address. */
    public long userToGuest(long userAddress, long len) {
        for (GuestRegion r : regions) {
            long rel = userAddress - r.userAddress();
            if (Long.compareUnsigned(rel, r.size()) < 0 && Long.compareUnsigned(len, r.size() - rel) <= 0) {
                return r.guestAddress() + rel;
            }
        }
        throw new GuestMemoryException("frontend user address range", userAddress, len);
    }

    // ---- little-endian accessors; fast when inside one region, byte-wise across a boundary ----

    public int readU8(long gpa) {
        int r = findRegion(gpa);
        if (r < 0) {
            throw new GuestMemoryException("u8 read", gpa, 1);
        }
        return segments[r].get(ValueLayout.JAVA_BYTE, gpa - starts[r]) & 0xff;
    }

    public int readU16(long gpa) {
        int r = findRegion(gpa);
        if (r >= 0 && sizes[r] - (gpa - starts[r]) >= 2) {
            return segments[r].get(LE_U16, gpa - starts[r]) & 0xffff;
        }
        return (int) readAcross(gpa, 2);
    }

    public long readU32(long gpa) {
        int r = findRegion(gpa);
        if (r >= 0 && sizes[r] - (gpa - starts[r]) >= 4) {
            return segments[r].get(LE_U32, gpa - starts[r]) & 0xffff_ffffL;
        }
        return readAcross(gpa, 4);
    }

    public long readU64(long gpa) {
        int r = findRegion(gpa);
        if (r >= 0 && sizes[r] - (gpa - starts[r]) >= 8) {
            return segments[r].get(LE_U64, gpa - starts[r]);
        }
        return readAcross(gpa, 8);
    }

    private long readAcross(long gpa, int n) {
        if (!contains(gpa, n)) {
            throw new GuestMemoryException("u" + (n * 8) + " read", gpa, n);
        }
        long v = 0;
        for (int i = 0; i < n; i++) {
            v |= (long) readU8(gpa + i) << (8 * i);
        }
        return v;
    }

    public void writeU8(long gpa, int value) {
        int r = findRegion(gpa);
        if (r < 0) {
            throw new GuestMemoryException("u8 write", gpa, 1);
        }
        segments[r].set(ValueLayout.JAVA_BYTE, gpa - starts[r], (byte) value);
    }

    public void writeU16(long gpa, int value) {
        int r = findRegion(gpa);
        if (r >= 0 && sizes[r] - (gpa - starts[r]) >= 2) {
            segments[r].set(LE_U16, gpa - starts[r], (short) value);
        } else {
            writeAcross(gpa, value, 2);
        }
    }

    public void writeU32(long gpa, long value) {
        int r = findRegion(gpa);
        if (r >= 0 && sizes[r] - (gpa - starts[r]) >= 4) {
            segments[r].set(LE_U32, gpa - starts[r], (int) value);
        } else {
            writeAcross(gpa, value, 4);
        }
    }

    public void writeU64(long gpa, long value) {
        int r = findRegion(gpa);
        if (r >= 0 && sizes[r] - (gpa - starts[r]) >= 8) {
            segments[r].set(LE_U64, gpa - starts[r], value);
        } else {
            writeAcross(gpa, value, 8);
        }
    }

    private void writeAcross(long gpa, long value, int n) {
        if (!contains(gpa, n)) {
            throw new GuestMemoryException("u" + (n * 8) + " write", gpa, n);
        }
        for (int i = 0; i < n; i++) {
            writeU8(gpa + i, (int) (value >>> (8 * i)));
        }
    }

    /** Copies guest bytes [gpa, gpa+dst.byteSize()) into {@code dst}, across regions. */
    public void read(long gpa, MemorySegment dst) {
        copy(gpa, dst, false);
    }

    /** Copies {@code src} into guest bytes starting at {@code gpa}, across regions. */
    public void write(long gpa, MemorySegment src) {
        copy(gpa, src, true);
    }

    private void copy(long gpa, MemorySegment buf, boolean toGuest) {
        long len = buf.byteSize();
        if (!contains(gpa, len)) {
            throw new GuestMemoryException(toGuest ? "write" : "read", gpa, len);
        }
        long addr = gpa;
        long done = 0;
        while (done < len) {
            int r = findRegion(addr);
            long off = addr - starts[r];
            long n = Math.min(len - done, sizes[r] - off);
            if (toGuest) {
                MemorySegment.copy(buf, done, segments[r], off, n);
            } else {
                MemorySegment.copy(segments[r], off, buf, done, n);
            }
            addr += n;
            done += n;
        }
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("GuestMemory[");
        for (int i = 0; i < regions.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(describe(regions[i]));
        }
        return sb.append(']').toString();
    }
}
