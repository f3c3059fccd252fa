package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;

import org.jvirtio.ring.RingViolation.Reason;

import static org.jvirtio.api.GuestMemory.LE_U64;
import static org.jvirtio.ring.PackedRingLayout.*;

/**
 * Reads one chain of a packed ring into a {@link RingChain}: from the ring's descriptors
 * ({@link #fromRing}) or, after a backend restart, from the inflight region's copies of them
 * ({@link #fromRegion}). Each descriptor field is read once into a local and handed to the
 * {@link ChainWalker}, which translates and bounds it; packed rules are checked here: AVAIL/USED
 * flags of every descriptor of a chain for the wrap counter of its position, a chain no longer
 * than the ring, an indirect descriptor alone (no NEXT, not inside a chain), and its buffer id
 * (in its last descriptor) below the ring size and not in flight. It keeps the buffer ids in
 * flight, each with the ring descriptors its chain spans ({@link #release} gives them back when
 * the chain is used), and gives the chain its id ({@link RingChain#id}). A refusal from either
 * method is the walker's violation.
 */
final class PackedChainReader {
    private final ChainWalker walker;
    private MemorySegment ring;
    private int size;
    private boolean indirect;

    /** Per buffer id: ring descriptors its chain spans while in flight, 0 when it is not. */
    private int[] idDescs = new int[0];
    /** The sum of {@link #idDescs}: the ring positions between the used and the avail position. */
    private int descsInFlight;

    PackedChainReader(ChainWalker walker) {
        this.walker = walker;
    }

    void ring(MemorySegment ring, int size, boolean indirect) {
        this.ring = ring;
        this.size = size;
        this.indirect = indirect;
        if (idDescs.length != size) {
            idDescs = new int[size];
        } else {
            java.util.Arrays.fill(idDescs, 0);
        }
        descsInFlight = 0;
    }

    /** Ring descriptors buffer {@code id}'s chain spans while in flight, 0 when it is not. */
    int descs(int id) {
        return idDescs[id];
    }

    /** Frees buffer {@code id} (its chain used or put back); returns the ring descriptors it spanned. */
    int release(int id) {
        int n = idDescs[id];
        idDescs[id] = 0;
        descsInFlight -= n;
        return n;
    }

    /**
     * Walks the chain whose first descriptor is at {@code head} (its flags already read with
     * acquire: {@code headFlags}; {@code wrap} the avail wrap counter there), copying each
     * descriptor into {@code track} when the inflight region is kept (null otherwise).
     *
     * @return where the chain ended: the descriptor after it and its wrap counter
     *         ({@link PackedRingLayout#offWrap}), or -1 when it is refused
     */
    int fromRing(RingChain chain, int head, boolean wrap, int headFlags, PackedInflight track) {
        walker.begin(chain, head);
        if (track != null) {
            track.begin();
        }
        int p = head;
        boolean w = wrap;
        int flags = headFlags;
        int n = 0;
        while (true) {
            if (++n > size) {
                return refuse(Reason.CHAIN_LONGER_THAN_RING, head, size, 0);
            }
            long base = (long) p * DESC_SIZE;
            // Each field read once into a local (TOCTOU). len, id and flags are one 64-bit word;
            // the head's flags are the ones read with acquire.
            long addr = ring.get(LE_U64, base + DESC_ADDR);
            long word = ring.get(LE_U64, base + DESC_LEN);
            int len = (int) word;
            int descId = (int) (word >>> 32) & 0xffff;
            if (n > 1) {
                flags = (int) (word >>> 48);
                if (!isAvailable(flags, w)) {
                    // VIRTIO 1.3, 2.8.6: every descriptor of a chain carries its AVAIL and USED bits.
                    return refuse(Reason.PACKED_FLAGS, p, w ? 1 : 0, flags);
                }
            }
            if (track != null) {
                track.descriptor(addr, len, flags, descId); // the values just read, not read again
            }
            if (++p == size) {
                p = 0;
                w = !w;
            }
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    return refuse(Reason.INDIRECT_NOT_NEGOTIATED, base / DESC_SIZE, 0, 0);
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    return refuse(Reason.INDIRECT_WITH_NEXT, base / DESC_SIZE, 0, 0);
                }
                if (n > 1) {
                    // 2.8.7: no direct descriptor with INDIRECT in a list linked by NEXT.
                    return refuse(Reason.INDIRECT_IN_CHAIN, base / DESC_SIZE, 0, 0);
                }
                if (!walker.packedIndirect(chain, addr, Integer.toUnsignedLong(len))) {
                    return -1;
                }
                return claim(chain, descId, n, head, track) ? offWrap(p, w) : -1;
            }
            if (!walker.descriptor(chain, addr, len, (flags & DESC_F_WRITE) != 0, (int) (base / DESC_SIZE))) {
                return -1;
            }
            if ((flags & DESC_F_NEXT) == 0) {
                // 2.8.6: the buffer id is in the chain's last descriptor
                return claim(chain, descId, n, head, track) ? offWrap(p, w) : -1;
            }
        }
    }

    private int refuse(Reason reason, long a, long b, long c) {
        walker.refuse(reason, a, b, c);
        return -1;
    }

    /**
     * Takes buffer {@code id} for a chain of {@code n} ring descriptors read at {@code head};
     * false when the id is out of range or in flight, or the chain would overrun chains in flight.
     */
    private boolean claim(RingChain chain, int id, int n, int head, PackedInflight track) {
        if (id >= size) {
            return walker.refuse(Reason.BUFFER_ID_OUT_OF_RANGE, id, size, head);
        }
        if (idDescs[id] != 0) {
            return walker.refuse(Reason.BUFFER_ID_IN_FLIGHT, id, head, 0);
        }
        if (descsInFlight + n > size) {
            // The driver made available a position whose buffer the device has not used yet
            // (2.8.21: it may not): the used position would overtake chains still in flight.
            return walker.refuse(Reason.RING_OVERRUN, head, descsInFlight + n, size);
        }
        idDescs[id] = n;
        descsInFlight += n;
        if (track != null) {
            track.taken(id);
        }
        chain.id(id);
        return true;
    }

    /**
     * Rebuilds the chain a predecessor left in flight from the region's copies of its {@code n}
     * descriptors starting at entry {@code head} of {@code track} (the ring's may be overwritten
     * by used descriptors since), buffer id {@code id} (below the ring size: {@link
     * PackedInflight#attach} checked it); each field read once and walked as a chain from the ring
     * is. The positions do not move (the region's avail position already counts the chain).
     */
    boolean fromRegion(RingChain chain, PackedInflight track, int head, int n, int id) {
        if (idDescs[id] != 0) {
            return walker.refuse(Reason.BUFFER_ID_IN_FLIGHT, id, head, 0);
        }
        walker.begin(chain, head);
        int e = head;
        for (int k = 0; k < n; k++, e = track.nextEntry(e)) {
            long addr = track.addr(e);
            int len = track.len(e);
            int flags = track.flags(e);
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    return walker.refuse(Reason.INDIRECT_NOT_NEGOTIATED, e, 0, 0);
                }
                if (n > 1) {
                    return walker.refuse(Reason.INDIRECT_IN_CHAIN, e, 0, 0);
                }
                return walker.packedIndirect(chain, addr, Integer.toUnsignedLong(len)) && resubmitted(chain, id, n);
            }
            if (!walker.descriptor(chain, addr, len, (flags & DESC_F_WRITE) != 0, e)) {
                return false;
            }
        }
        return resubmitted(chain, id, n);
    }

    private boolean resubmitted(RingChain chain, int id, int n) {
        idDescs[id] = n;
        descsInFlight += n;
        chain.id(id);
        return true;
    }
}
