package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.ring.RingViolation.Reason;

import static org.jvirtio.api.GuestMemory.LE_U64;
import static org.jvirtio.ring.SplitRingLayout.*;

/**
 * Walks one descriptor chain of a ring into a {@link RingChain}. For a split ring it follows NEXT
 * through the descriptor table itself ({@link #walk}); a packed ring's queue steps through its
 * ring and hands each descriptor over ({@link #begin}, {@link #descriptor},
 * {@link #packedIndirect}). Either way it reads an indirect table in place (or through {@link GuestMemory} when it
 * crosses a region boundary), checks every descriptor against the chain so far, and translates
 * each buffer into guest memory regions, splitting it where it crosses one. Every descriptor field
 * is read once into a local (TOCTOU). A walk that meets a violation stops and says why
 * ({@link #violation()}); nothing is thrown for guest data and nothing outside guest memory is
 * read.
 *
 * <p>Owned by its queue's thread; keeps the region the last buffer was in, since most buffers of
 * a guest share one.
 */
final class ChainWalker {
    private final int queue;
    private final int maxChainBuffers;

    private GuestMemory memory = GuestMemory.empty();
    private MemorySegment desc;
    private int size;
    private boolean indirect;

    /** Why the last walk stopped, or null after one that succeeded. */
    private RingViolation violation;
    /** Whether the chain being walked has had a device-writable descriptor yet. */
    private boolean seenWritable;

    /** The region the last translated buffer was in. */
    private int cachedRegion;
    private long cachedRegionStart;
    /** 0 means "no cached region": nothing is inside a region of size 0. */
    private long cachedRegionSize;

    /**
     * @param queue           the queue's index, for violations
     * @param maxChainBuffers most buffers one chain may have after translation
     */
    ChainWalker(int queue, int maxChainBuffers) {
        this.queue = queue;
        this.maxChainBuffers = maxChainBuffers;
    }

    /**
     * Walks chains of a ring of {@code size} entries whose descriptor table is {@code desc}, in
     * {@code memory}, from now on.
     *
     * @param indirect whether VIRTIO_F_INDIRECT_DESC was negotiated
     */
    void ring(GuestMemory memory, MemorySegment desc, int size, boolean indirect) {
        this.memory = memory;
        this.desc = desc;
        this.size = size;
        this.indirect = indirect;
        this.cachedRegionSize = 0;
    }

    /** Why the last {@link #walk} returned false. */
    RingViolation violation() {
        return violation;
    }

    /** Walks the chain at {@code head} into {@code chain}; false on a violation ({@link #violation()}). */
    boolean walk(RingChain chain, int head) {
        violation = null;
        if (head >= size) {
            return fail(Reason.HEAD_OUT_OF_RANGE, head, size, 0);
        }
        chain.start(memory, head);
        seenWritable = false;
        int id = head;
        int count = 0;
        while (true) {
            if (++count > size) {
                return fail(Reason.DESCRIPTOR_LOOP, head, size, 0);
            }
            long base = (long) id * DESC_SIZE;
            // Each field read once into a local (TOCTOU): the guest may change them meanwhile.
            // len, flags and next are one little-endian 64-bit word.
            long addr = desc.get(LE_U64, base + DESC_ADDR);
            long word = desc.get(LE_U64, base + DESC_LEN);
            int len = (int) word;
            int flags = (int) (word >>> 32) & 0xffff;
            int next = (int) (word >>> 48);
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    return fail(Reason.INDIRECT_NOT_NEGOTIATED, id, 0, 0);
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    return fail(Reason.INDIRECT_WITH_NEXT, id, 0, 0);
                }
                // VIRTIO 1.3, 2.7.5.3.2: zero or more direct descriptors, then one indirect one;
                // its WRITE flag is ignored.
                return walkIndirect(chain, addr, Integer.toUnsignedLong(len));
            }
            if (!take(chain, addr, len, flags, id)) {
                return false;
            }
            if ((flags & DESC_F_NEXT) == 0) {
                return true;
            }
            if (next >= size) {
                return fail(Reason.NEXT_OUT_OF_RANGE, next, size, id);
            }
            id = next;
        }
    }

    /**
     * Starts a chain that the ring's own protocol walks (packed: descriptors in ring order): its
     * descriptors follow through {@link #descriptor} or {@link #packedIndirect}.
     */
    void begin(RingChain chain, int head) {
        violation = null;
        chain.start(memory, head);
        seenWritable = false;
    }

    /** One direct descriptor of a chain begun with {@link #begin}, found at ring position {@code pos}. */
    boolean descriptor(RingChain chain, long addr, int len, boolean writable, int pos) {
        return take(chain, addr, len, writable ? DESC_F_WRITE : 0, pos);
    }

    /**
     * A packed ring's indirect table (VIRTIO 1.3, 2.8.7) for a chain begun with {@link #begin}:
     * {@code tableLen / 16} descriptors in order, WRITE the only flag they may carry (an INDIRECT
     * one is refused: a nested table). Read in place, or through {@link GuestMemory} when it
     * crosses a region boundary; each entry read once.
     */
    boolean packedIndirect(RingChain chain, long tableAddr, long tableLen) {
        if (tableLen == 0) {
            return fail(Reason.INDIRECT_TABLE_EMPTY, tableAddr, 0, 0);
        }
        if ((tableLen & (DESC_SIZE - 1)) != 0) {
            return fail(Reason.INDIRECT_TABLE_LENGTH, tableLen, tableAddr, 0);
        }
        long entries = tableLen / DESC_SIZE;
        if (entries > MAX_SIZE) {
            return fail(Reason.INDIRECT_TABLE_TOO_LARGE, entries, MAX_SIZE, 0);
        }
        MemorySegment seg = null;
        long segBase = 0;
        int r = memory.findRegion(tableAddr);
        if (r >= 0 && tableLen <= memory.regionSize(r) - (tableAddr - memory.regionStart(r))) {
            seg = memory.regionSegment(r);
            segBase = tableAddr - memory.regionStart(r);
        } else if (!memory.contains(tableAddr, tableLen)) {
            return fail(Reason.INDIRECT_TABLE_OUTSIDE_MEMORY, tableAddr, tableLen, 0);
        }
        for (int i = 0; i < (int) entries; i++) {
            long off = (long) i * DESC_SIZE;
            long addr;
            long word;
            if (seg != null) {
                addr = seg.get(LE_U64, segBase + off + PackedRingLayout.DESC_ADDR);
                word = seg.get(LE_U64, segBase + off + PackedRingLayout.DESC_LEN);
            } else {
                addr = memory.readU64(tableAddr + off + PackedRingLayout.DESC_ADDR);
                word = memory.readU64(tableAddr + off + PackedRingLayout.DESC_LEN);
            }
            int len = (int) word;
            int flags = (int) (word >>> 48);
            if ((flags & PackedRingLayout.DESC_F_INDIRECT) != 0) {
                return fail(Reason.NESTED_INDIRECT, i, 0, 0);
            }
            if (!take(chain, addr, len, flags & DESC_F_WRITE, i)) {
                return false;
            }
        }
        return true;
    }

    private boolean walkIndirect(RingChain chain, long tableAddr, long tableLen) {
        if (tableLen == 0) {
            return fail(Reason.INDIRECT_TABLE_EMPTY, tableAddr, 0, 0);
        }
        if ((tableLen & (DESC_SIZE - 1)) != 0) {
            return fail(Reason.INDIRECT_TABLE_LENGTH, tableLen, tableAddr, 0);
        }
        long entries = tableLen / DESC_SIZE;
        if (entries > MAX_SIZE) {
            return fail(Reason.INDIRECT_TABLE_TOO_LARGE, entries, MAX_SIZE, 0);
        }
        int count = (int) entries;
        // Usually the table lies in one region: read it in place. A table that crosses a region
        // boundary is legal (memory is not contiguous on the host); read it through GuestMemory.
        MemorySegment seg = null;
        long segBase = 0;
        int r = memory.findRegion(tableAddr);
        if (r >= 0 && tableLen <= memory.regionSize(r) - (tableAddr - memory.regionStart(r))) {
            seg = memory.regionSegment(r);
            segBase = tableAddr - memory.regionStart(r);
        } else if (!memory.contains(tableAddr, tableLen)) {
            return fail(Reason.INDIRECT_TABLE_OUTSIDE_MEMORY, tableAddr, tableLen, 0);
        }
        int id = 0;
        int walked = 0;
        while (true) {
            if (++walked > count) {
                return fail(Reason.INDIRECT_LOOP, walked, count, 0);
            }
            long off = (long) id * DESC_SIZE;
            long addr;
            int len;
            int flags;
            int next;
            if (seg != null) {
                addr = seg.get(LE_U64, segBase + off + DESC_ADDR);
                long word = seg.get(LE_U64, segBase + off + DESC_LEN);
                len = (int) word;
                flags = (int) (word >>> 32) & 0xffff;
                next = (int) (word >>> 48);
            } else {
                long e = tableAddr + off;
                addr = memory.readU64(e + DESC_ADDR);
                len = (int) memory.readU32(e + DESC_LEN);
                flags = memory.readU16(e + DESC_FLAGS);
                next = memory.readU16(e + DESC_NEXT);
            }
            if ((flags & DESC_F_INDIRECT) != 0) {
                return fail(Reason.NESTED_INDIRECT, id, 0, 0);
            }
            if (!take(chain, addr, len, flags, id)) {
                return false;
            }
            if ((flags & DESC_F_NEXT) == 0) {
                return true;
            }
            if (next >= count) {
                return fail(Reason.INDIRECT_NEXT_OUT_OF_RANGE, next, count, id);
            }
            id = next;
        }
    }

    /**
     * Checks one descriptor against the chain so far (no readable after writable, totals within
     * 32 bits) and adds its buffer.
     */
    private boolean take(RingChain chain, long addr, int len, int flags, int id) {
        boolean w = (flags & DESC_F_WRITE) != 0;
        if (w) {
            seenWritable = true;
        } else if (seenWritable) {
            return fail(Reason.READABLE_AFTER_WRITABLE, id, 0, 0);
        }
        // VIRTIO 1.3, 2.7.5.1: the whole chain (readable and writable together) stays below 2^32.
        long total = chain.writableLength() + chain.readableLength() + Integer.toUnsignedLong(len);
        if (total > 0xffff_ffffL) {
            return fail(Reason.LENGTH_OVERFLOW, total, 0, 0);
        }
        return addBuffer(chain, addr, len, w, id);
    }

    /** Translates one descriptor's buffer, splitting it where it crosses regions. */
    private boolean addBuffer(RingChain chain, long addr, int len, boolean writable, int descId) {
        if (len == 0) {
            return true; // nothing to read or write; not an error (VIRTIO 1.3 does not forbid it)
        }
        long left = Integer.toUnsignedLong(len);
        if (Long.compareUnsigned(addr + left - 1, addr) < 0) {
            return fail(Reason.ADDRESS_OUT_OF_RANGE, addr, left, descId);
        }
        if (chain.bufferCount() >= maxChainBuffers) {
            return fail(Reason.CHAIN_TOO_LONG, chain.head(), maxChainBuffers, 0);
        }
        // Fast path: the whole buffer inside the region the previous buffer was in.
        long rel = addr - cachedRegionStart;
        if (Long.compareUnsigned(rel, cachedRegionSize) < 0 && left <= cachedRegionSize - rel) {
            chain.add(cachedRegion, rel, len, writable);
            return true;
        }
        GuestMemory mem = memory;
        long a = addr;
        while (left > 0) {
            int r = mem.findRegion(a);
            if (r < 0) {
                return fail(Reason.ADDRESS_OUT_OF_RANGE, addr, Integer.toUnsignedLong(len), descId);
            }
            long off = a - mem.regionStart(r);
            long n = Math.min(left, mem.regionSize(r) - off);
            if (chain.bufferCount() >= maxChainBuffers) {
                return fail(Reason.CHAIN_TOO_LONG, chain.head(), maxChainBuffers, 0);
            }
            chain.add(r, off, (int) n, writable);
            cachedRegion = r;
            cachedRegionStart = mem.regionStart(r);
            cachedRegionSize = mem.regionSize(r);
            a += n;
            left -= n;
        }
        return true;
    }

    /** Records why a chain the ring's own protocol walks is refused; returns false. */
    boolean refuse(Reason reason, long a, long b, long c) {
        return fail(reason, a, b, c);
    }

    private boolean fail(Reason reason, long a, long b, long c) {
        violation = new RingViolation(reason, queue, a, b, c);
        return false;
    }
}
