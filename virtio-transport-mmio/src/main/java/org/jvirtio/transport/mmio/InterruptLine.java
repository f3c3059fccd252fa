package org.jvirtio.transport.mmio;

import org.jvirtio.api.EventFd;

/**
 * The interrupt line of one virtio-mmio device, as the VMM wires it. virtio-mmio interrupts are
 * level-triggered: the line is high while InterruptStatus has a bit set, and the transport lowers
 * it when the driver's InterruptACK cleared the last one. Called from the device's queue threads
 * and from the VMM thread that writes InterruptACK; implementations must be thread-safe and must
 * not block.
 */
public interface InterruptLine {
    /** Drives the line high (InterruptStatus became non-zero, or stays so after an event). */
    void raise();

    /** Drives the line low (InterruptStatus became zero). */
    void lower();

    /** A line nobody listens to: for drivers that poll InterruptStatus. */
    InterruptLine NONE = new InterruptLine() {
        @Override
        public void raise() {
        }

        @Override
        public void lower() {
        }
    };

    /**
     * The irqfd pattern: each raise signals {@code fd} (a KVM irqfd, or anything waiting on it);
     * lowering is the VMM's business (KVM's resample fd), so it does nothing here.
     */
    static InterruptLine eventFd(EventFd fd) {
        return new InterruptLine() {
            @Override
            public void raise() {
                fd.signal();
            }

            @Override
            public void lower() {
            }
        };
    }
}
