package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestMemoryException;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.PackedRingLayout;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.RingGeometry;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.RingViolation;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitRingLayout;
import org.jvirtio.transport.vhostuser.VhostUserCodec.VringAddr;

/**
 * What differs between a split and a packed ring in vhost-user's ring messages: the sizes
 * SET_VRING_NUM allows, the encoding of SET_VRING_BASE / GET_VRING_BASE (split: the next avail
 * index; packed: bits 0-14 the next descriptor to read, bit 15 its wrap counter, bits 16-30 and 31
 * the same for the next used one, as QEMU's {@code virtio_queue_packed_get_last_avail_idx}), and
 * the sizes of the three parts SET_VRING_ADDR places.
 */
final class VringLayout {
    private VringLayout() {
    }

    /** SET_VRING_NUM: a split ring's size is a power of two, a packed ring's any; both at most {@code deviceMax}. */
    static void checkSize(String name, int index, int n, int deviceMax, boolean packed) throws VhostUserProtocolException {
        int max = Math.min(deviceMax, SplitRingLayout.MAX_SIZE);
        if (packed ? n < 1 || n > max : !SplitRingLayout.isValidSize(n) || n > max) {
            throw new VhostUserProtocolException(name + ": queue " + index + " size " + Integer.toUnsignedString(n)
                    + (packed ? " is not in [1, " : " is not a power of two in [1, ") + max + "]");
        }
    }

    /** SET_VRING_BASE for a ring of {@code num} entries (0: not set yet). */
    static void checkBase(String name, int index, int b, int num, boolean packed) throws VhostUserProtocolException {
        if (!packed && Integer.compareUnsigned(b, 0xffff) > 0) {
            throw new VhostUserProtocolException(name + ": queue " + index + " base " + Integer.toUnsignedString(b) + " exceeds 16 bits");
        }
        if (packed && num > 0 && ((b & 0x7fff) >= num || (b >>> 16 & 0x7fff) >= num)) {
            throw new VhostUserProtocolException(name + ": queue " + index + " packed base 0x" + Integer.toHexString(b)
                    + " names a descriptor past the ring's " + num);
        }
    }

    /** Where an active queue stands, in the base's encoding. */
    static int standing(RingQueue queue) {
        if (queue instanceof PackedQueue p) {
            return p.availState() | p.usedState() << 16;
        }
        return ((SplitQueue) queue).nextAvail();
    }

    /**
     * Translates the front-end's ring addresses (its user addresses) to guest addresses in
     * {@code memory} and has the ring judge the placement.
     *
     * @throws RingConfigurationException why the ring cannot be placed there
     */
    static RingGeometry place(GuestMemory memory, int index, int num, VringAddr a, boolean packed) throws RingConfigurationException {
        long d;
        long av;
        long u;
        try {
            d = memory.userToGuest(a.desc(), packed ? PackedRingLayout.ringBytes(num) : SplitRingLayout.descTableBytes(num));
            av = memory.userToGuest(a.avail(), packed ? PackedRingLayout.EVENT_SIZE : SplitRingLayout.availBytes(num));
            u = memory.userToGuest(a.used(), packed ? PackedRingLayout.EVENT_SIZE : SplitRingLayout.usedBytes(num));
        } catch (GuestMemoryException e) {
            throw new RingConfigurationException(new RingViolation(RingViolation.Reason.RING_OUTSIDE_MEMORY, index, a.desc(), num, 0),
                    "vring addresses outside guest memory: " + e.getMessage());
        }
        try {
            return RingGeometry.of(index, memory, num, d, av, u, packed);
        } catch (RingConfigurationException e) {
            throw new RingConfigurationException(e.violation(), "vring addresses refused by the ring: " + e.getMessage());
        }
    }

    /**
     * Activates {@code queue} at {@code at} (the base's encoding); {@code splitUsed} is a split
     * ring's used index to continue from, or -1 for the one in the ring.
     */
    static void activate(RingQueue queue, RingGeometry g, long features, int at, int splitUsed) {
        if (queue instanceof PackedQueue p) {
            int usedState = at >>> 16;
            // A front-end that sends the avail half alone (as DPDK's does) has nothing in flight.
            p.activate(g, features, at & 0xffff, usedState == 0 ? -1 : usedState);
        } else {
            queue.activate(g, features, at, splitUsed);
        }
    }
}
