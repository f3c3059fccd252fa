package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import static org.jvirtio.api.GuestMemory.LE_U32;
import static org.jvirtio.ring.PackedRingLayout.*;

/**
 * A packed queue's event suppression (VIRTIO 1.3, 2.8.10): the device's structure, which it
 * writes to ask for kicks or not, and the driver's, read to decide whether the used descriptors
 * written since the last decision earn an interrupt. Owned by one {@link PackedQueue} and called
 * on its thread; the queue contains faults (an {@link InternalError} from guest memory) and logs
 * the device area when {@link #enable} or {@link #disable} wrote it.
 */
final class PackedEvents {
    private MemorySegment driverEvent;
    private MemorySegment deviceEvent;
    private boolean eventIdx;
    private int size;
    private int signalledUsed;
    private boolean signalledUsedValid;
    /**
     * Descriptors returned since the interrupt was last decided. EVENT_IDX's off_wrap names a
     * position and a wrap counter only, so whether the driver's event was passed can be told
     * from the old and new positions only while they are less than a lap apart; a device that
     * returns a lap or more between two decisions (it pops while the driver recycles buffers
     * concurrently, so one batch can go round a small ring twice) must interrupt.
     */
    private int usedSinceDecision;
    private boolean notificationsEnabled = true;

    /** Takes a newly activated ring's two event areas; nothing signalled yet, notifications on. */
    void reset(MemorySegment driverEvent, MemorySegment deviceEvent, boolean eventIdx, int size) {
        this.driverEvent = driverEvent;
        this.deviceEvent = deviceEvent;
        this.eventIdx = eventIdx;
        this.size = size;
        this.signalledUsedValid = false;
        this.usedSinceDecision = 0;
        this.notificationsEnabled = true;
    }

    /** Counts {@code descs} ring descriptors returned (used) since the last decision. */
    void returned(int descs) {
        usedSinceDecision += descs;
    }

    /**
     * Whether the driver wants an interrupt for the descriptors returned since the last call,
     * {@code now} being the used position and wrap counter after them ({@link PackedRingLayout#offWrap}).
     */
    boolean needsInterrupt(int now) {
        // Full fence: our used descriptors must be visible before we read the driver's event
        // suppression, or we race the driver re-enabling interrupts. Pairs with the driver's
        // virtio_mb between writing its event suppression and re-reading the next used
        // descriptor (virtqueue_enable_cb_prepare_packed / virtqueue_poll_packed in Linux).
        VarHandle.fullFence();
        int old = signalledUsed;
        boolean valid = signalledUsedValid && usedSinceDecision < size;
        signalledUsed = now;
        signalledUsedValid = true;
        usedSinceDecision = 0;
        int event = driverEvent.get(LE_U32, 0); // off_wrap and flags read once, together
        int flags = (event >>> 16) & 0x3;
        if (flags == EVENT_F_DISABLE) {
            return false;
        }
        if (flags != EVENT_F_DESC || !eventIdx) {
            return true; // ENABLE, or DESC without EVENT_IDX / the reserved value: interrupt, the safe side
        }
        return !valid || needEvent(size, event & 0xffff, now, old);
    }

    /**
     * Asks for a kick when the driver makes the descriptor at {@code nextAvail} (position and wrap
     * counter, {@link PackedRingLayout#offWrap}) available with EVENT_IDX, or at any kick without
     * it, then fences: the caller re-reads that descriptor's flags after this returns.
     */
    void enable(int nextAvail) {
        int event = eventIdx ? nextAvail | (EVENT_F_DESC << 16) : EVENT_F_ENABLE << 16;
        deviceEvent.set(LE_U32, 0, event);
        notificationsEnabled = true;
        // Full fence: the event suppression store must be visible before the caller re-reads the
        // next descriptor's flags, or the driver may read the old value, skip its kick, and both
        // sides sleep. Pairs with the driver's virtio_mb between making descriptors available and
        // reading the device's event suppression (virtqueue_kick_prepare_packed).
        VarHandle.fullFence();
    }

    /** Asks the driver not to kick; false when notifications were already off (nothing written). */
    boolean disable() {
        if (!notificationsEnabled) {
            return false;
        }
        notificationsEnabled = false;
        deviceEvent.set(LE_U32, 0, EVENT_F_DISABLE << 16);
        return true;
    }

    @Override
    public String toString() {
        return "signalled 0x" + Integer.toHexString(signalledUsed) + (notificationsEnabled ? ", notifying" : "");
    }
}
