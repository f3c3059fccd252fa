package org.jvirtio.transport.mmio;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * The InterruptStatus register and the line it drives: bits are set from the queue threads (and
 * for configuration changes), cleared by the driver's InterruptACK exactly as written, and the
 * level line is high while any bit is set. Thread-safe.
 */
final class InterruptStatus {
    private final InterruptLine line;
    private final AtomicInteger bits = new AtomicInteger();
    /** Orders raise/lower on the line with the change of the bits. */
    private final Object lock = new Object();

    InterruptStatus(InterruptLine line) {
        this.line = line;
    }

    int get() {
        return bits.get();
    }

    /** Sets {@code set} and raises the line; from any thread. */
    void raise(int set) {
        synchronized (lock) {
            bits.getAndUpdate(s -> s | set);
            line.raise();
        }
    }

    /** InterruptACK: clears exactly {@code ack}; the line goes low only when no bit is left. */
    void acknowledge(int ack) {
        synchronized (lock) {
            if (bits.updateAndGet(s -> s & ~ack) == 0) {
                line.lower();
            }
        }
    }

    /** A device reset: no bit set, the line low. */
    void clear() {
        synchronized (lock) {
            bits.set(0);
            line.lower();
        }
    }
}
