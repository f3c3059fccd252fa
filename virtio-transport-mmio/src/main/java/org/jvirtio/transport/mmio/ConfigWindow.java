package org.jvirtio.transport.mmio;

import org.jvirtio.api.RateLimitedLog;
import org.jvirtio.api.VirtioDevice;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The device's configuration space as the virtio-mmio window shows it from offset 0x100:
 * accesses of 1, 2 or 4 bytes, naturally aligned, little-endian, each passed to the device as it
 * comes (a write of 2 bytes is a write of 2 bytes, unlike vhost-user where QEMU rewrites the
 * whole space). An access of another width, misaligned, or reaching past {@code configSize()} is
 * logged (rate-limited) and ignored; a read of it returns 0.
 */
final class ConfigWindow {
    private static final Logger LOG = LoggerFactory.getLogger(MmioTransport.class);
    private static final RateLimitedLog BAD_ACCESS = RateLimitedLog.perSecond(LOG);

    private ConfigWindow() {
    }

    static int read(VirtioDevice device, int offset, int width) {
        if (!allowed(device, offset, width, "read")) {
            return 0;
        }
        byte[] b = device.readConfig(offset, width);
        int v = 0;
        for (int i = 0; i < width; i++) {
            v |= (b[i] & 0xff) << (8 * i);
        }
        return v;
    }

    static void write(VirtioDevice device, int offset, int width, int value) {
        if (!allowed(device, offset, width, "write")) {
            return;
        }
        byte[] b = new byte[width];
        for (int i = 0; i < width; i++) {
            b[i] = (byte) (value >>> (8 * i));
        }
        device.writeConfig(offset, b);
    }

    private static boolean allowed(VirtioDevice device, int offset, int width, String what) {
        if (width != 1 && width != 2 && width != 4 || (offset & (width - 1)) != 0) {
            BAD_ACCESS.warn("virtio-mmio: config {} of {} bytes at 0x{}: accesses of 1, 2 or 4 bytes, aligned; ignored", what, width,
                    Integer.toHexString(offset));
            return false;
        }
        if (offset + width > device.configSize()) {
            BAD_ACCESS.warn("virtio-mmio: config {} at 0x{} past the device's {} bytes; ignored", what, Integer.toHexString(offset),
                    device.configSize());
            return false;
        }
        return true;
    }
}
