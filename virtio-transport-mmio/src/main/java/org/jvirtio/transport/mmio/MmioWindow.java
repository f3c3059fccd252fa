package org.jvirtio.transport.mmio;

/**
 * A virtio-mmio register window as a driver sees it: 32-bit registers and the configuration
 * space, read and written by offset. {@link MmioTransport} is one; a VMM's bus that routes by
 * address to several is another.
 */
public interface MmioWindow {
    /** Reads {@code width} bytes (1, 2 or 4) at {@code offset}, zero-extended. */
    int read(long offset, int width);

    /** Writes the low {@code width} bytes of {@code value} at {@code offset}. */
    void write(long offset, int width, int value);
}
