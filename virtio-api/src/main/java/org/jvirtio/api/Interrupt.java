package org.jvirtio.api;

/** How a device tells the driver that a queue has used buffers (a call eventfd, an MMIO IRQ). */
@FunctionalInterface
public interface Interrupt {
    void signal();

    /** An interrupt that goes nowhere (queue without a call fd, polled drivers). */
    Interrupt NONE = () -> { };
}
