package org.jvirtio.ring;

/**
 * Why a queue stopped trusting its ring: the named reason and the offending values. Produced
 * for every rule a driver (or frontend) can break; see {@link Reason}.
 *
 * @param reason what rule was broken
 * @param queue  the queue index
 * @param a      first offending value (see the reason's message)
 * @param b      second offending value
 * @param c      third offending value
 */
public record RingViolation(Reason reason, int queue, long a, long b, long c) {

    /** Every way a guest or frontend can make a ring unusable, split or packed. */
    public enum Reason {
        SIZE_INVALID("queue size %1$d is not a power of two in [1, %2$d]"),
        RING_MISALIGNED("ring part %3$s at 0x%1$x is not %2$d-byte aligned"),
        RING_OUTSIDE_MEMORY("ring part %3$s [0x%1$x, +%2$d) is not inside one guest memory region"),
        RING_HOST_MISALIGNED("ring part %3$s is at host address 0x%1$x, not %2$d-byte aligned: the region is mapped at an odd offset, and its index cannot be accessed atomically"),
        HEAD_OUT_OF_RANGE("head descriptor id %1$d >= queue size %2$d"),
        NEXT_OUT_OF_RANGE("next descriptor id %1$d >= queue size %2$d (from descriptor %3$d)"),
        DESCRIPTOR_LOOP("chain of more than %2$d descriptors starting at %1$d: a loop"),
        CHAIN_TOO_LONG("chain at head %1$d has more than %2$d buffers"),
        AVAIL_INDEX_TOO_FAR("avail->idx %1$d is %3$d entries ahead of the next available %2$d: more than the queue size"),
        TOO_MANY_IN_FLIGHT("more than %2$d chains in flight (head %1$d): avail ring repeats heads"),
        READABLE_AFTER_WRITABLE("device-readable descriptor %1$d follows a device-writable one"),
        INDIRECT_NOT_NEGOTIATED("descriptor %1$d is INDIRECT but VIRTIO_F_INDIRECT_DESC was not negotiated"),
        INDIRECT_WITH_NEXT("descriptor %1$d has both INDIRECT and NEXT"),
        NESTED_INDIRECT("indirect table entry %1$d is itself INDIRECT"),
        INDIRECT_TABLE_EMPTY("indirect table at 0x%1$x has length 0"),
        INDIRECT_TABLE_LENGTH("indirect table at 0x%2$x has length %1$d, not a multiple of 16"),
        INDIRECT_TABLE_TOO_LARGE("indirect table of %1$d entries exceeds %2$d"),
        INDIRECT_NEXT_OUT_OF_RANGE("indirect entry %3$d links to %1$d, table has %2$d entries"),
        INDIRECT_LOOP("indirect chain longer than its table of %2$d entries: a loop"),
        INDIRECT_TABLE_OUTSIDE_MEMORY("indirect table [0x%1$x, +%2$d) is not in guest memory"),
        ADDRESS_OUT_OF_RANGE("buffer [0x%1$x, +%2$d) of descriptor %3$d is not in guest memory"),
        LENGTH_OVERFLOW("chain lengths add up to %1$d bytes, more than 2^32 - 1"),
        PACKED_SIZE_INVALID("packed queue size %1$d is not in [1, %2$d]"),
        PACKED_FLAGS("descriptor %1$d (wrap counter %2$d) of a chain is not available: flags 0x%3$x"),
        BUFFER_ID_OUT_OF_RANGE("buffer id %1$d >= queue size %2$d (chain at descriptor %3$d)"),
        BUFFER_ID_IN_FLIGHT("buffer id %1$d is already in flight (chain at descriptor %2$d)"),
        CHAIN_LONGER_THAN_RING("chain at descriptor %1$d has more than %2$d descriptors: longer than the ring"),
        INDIRECT_IN_CHAIN("descriptor %1$d is INDIRECT inside a chain linked by NEXT"),
        RING_OVERRUN("the chain at descriptor %1$d would put %2$d descriptors in flight in a ring of %3$d: the driver reused positions the device has not used yet"),
        MEMORY_FAULT("guest memory faulted while the ring was accessed (the file behind it shrank under the mapping?)");

        private final String format;

        Reason(String format) {
            this.format = format;
        }
    }

    /** Names of ring parts, for the RING_* geometry reasons: split's three, then packed's three. */
    static final String[] PARTS = {"descriptor table", "available ring", "used ring", "descriptor ring", "driver area", "device area"};
    /** Where packed's parts start in {@link #PARTS}. */
    static final int PACKED_PARTS = 3;

    public String message() {
        Object third = (reason == Reason.RING_MISALIGNED || reason == Reason.RING_OUTSIDE_MEMORY || reason == Reason.RING_HOST_MISALIGNED)
                ? PARTS[(int) c] : (Object) c;
        return "queue " + queue + ": " + reason + ": " + String.format(reason.format, a, b, third);
    }

    @Override
    public String toString() {
        return message();
    }
}
