package org.jvirtio.transport.mmio;

import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.DeviceStatus;

/**
 * The Status register and the configuration interrupts it governs (VIRTIO 1.3, 2.1.2): the device
 * notifies nothing before DRIVER_OK, so a configuration change or a DEVICE_NEEDS_RESET set before
 * it raises no interrupt; a NEEDS_RESET set before DRIVER_OK is announced when the driver sets
 * DRIVER_OK ({@link #write}). Also counts the configuration changes the device announced, which
 * move ConfigGeneration. Thread-safe: queue threads set NEEDS_RESET and announce changes while
 * vCPU threads write the register.
 */
final class StatusRegister {
    private final AtomicInteger status = new AtomicInteger();
    private final AtomicInteger configChanges = new AtomicInteger();
    private final InterruptStatus interrupts;

    StatusRegister(InterruptStatus interrupts) {
        this.interrupts = interrupts;
    }

    int get() {
        return status.get();
    }

    boolean has(int bits) {
        return (status.get() & bits) == bits;
    }

    /**
     * The driver's write of {@code bits} (already judged legal), keeping DEVICE_NEEDS_RESET; the
     * configuration interrupt owed for a NEEDS_RESET set before DRIVER_OK is raised when DRIVER_OK
     * arrives. Returns the new value.
     */
    int write(int bits) {
        int before = status.getAndUpdate(s -> bits | (s & DeviceStatus.DEVICE_NEEDS_RESET));
        int now = bits | (before & DeviceStatus.DEVICE_NEEDS_RESET);
        if ((now & DeviceStatus.DEVICE_NEEDS_RESET) != 0 && (now & DeviceStatus.DRIVER_OK) != 0
                && (before & DeviceStatus.DRIVER_OK) == 0) {
            interrupts.raise(MmioRegisters.INT_CONFIG);
        }
        return now;
    }

    /** A device reset: every bit cleared. */
    void clear() {
        status.set(0);
    }

    /** Sets DEVICE_NEEDS_RESET; tells the driver with a configuration interrupt once DRIVER_OK is set. */
    void needsReset() {
        int was = status.getAndUpdate(s -> s | DeviceStatus.DEVICE_NEEDS_RESET);
        if ((was & DeviceStatus.DRIVER_OK) != 0) {
            interrupts.raise(MmioRegisters.INT_CONFIG);
        }
    }

    /** The device changed its configuration: ConfigGeneration moves; interrupt only after DRIVER_OK (as QEMU's virtio_notify_config). */
    void configChanged() {
        configChanges.incrementAndGet();
        if (has(DeviceStatus.DRIVER_OK)) {
            interrupts.raise(MmioRegisters.INT_CONFIG);
        }
    }

    /** How many configuration changes the device announced. */
    int configChanges() {
        return configChanges.get();
    }
}
