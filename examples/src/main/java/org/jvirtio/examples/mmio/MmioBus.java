package org.jvirtio.examples.mmio;

import java.util.Map;
import java.util.TreeMap;

import org.jvirtio.transport.mmio.MmioRegisters;
import org.jvirtio.transport.mmio.MmioTransport;
import org.jvirtio.transport.mmio.MmioWindow;

/**
 * What a VMM's MMIO exit handler does with virtio-mmio devices: route an access by guest physical
 * address to the window it falls in. Accesses that hit no window read all ones, as on real buses.
 */
final class MmioBus {
    private final TreeMap<Long, MmioTransport> windows = new TreeMap<>();

    void map(long base, MmioTransport device) {
        windows.put(base, device);
    }

    Map<Long, MmioTransport> windows() {
        return windows;
    }

    int read(long gpa, int width) {
        Map.Entry<Long, MmioTransport> e = windows.floorEntry(gpa);
        if (e == null || gpa - e.getKey() >= MmioRegisters.WINDOW) {
            return -1;
        }
        return e.getValue().read(gpa - e.getKey(), width);
    }

    void write(long gpa, int width, int value) {
        Map.Entry<Long, MmioTransport> e = windows.floorEntry(gpa);
        if (e != null && gpa - e.getKey() < MmioRegisters.WINDOW) {
            e.getValue().write(gpa - e.getKey(), width, value);
        }
    }

    /** The window at {@code base} as a driver sees it, every access going through the bus. */
    MmioWindow at(long base, java.io.PrintWriter trace) {
        return new MmioWindow() {
            @Override
            public int read(long offset, int width) {
                int v = MmioBus.this.read(base + offset, width);
                if (trace != null) {
                    trace.printf("    read  0x%08x/%d -> 0x%x%n", base + offset, width, v);
                }
                return v;
            }

            @Override
            public void write(long offset, int width, int value) {
                if (trace != null) {
                    trace.printf("    write 0x%08x/%d <- 0x%x%n", base + offset, width, value);
                }
                MmioBus.this.write(base + offset, width, value);
            }
        };
    }
}
