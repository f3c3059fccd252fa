package org.jvirtio.testkit.transports;

import java.util.function.BooleanSupplier;

import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.host.QueueHost;
import org.jvirtio.transport.mmio.InterruptLine;
import org.jvirtio.transport.mmio.MmioTransport;

import static org.jvirtio.transport.mmio.MmioRegisters.*;

/** An MMIO register window, driven register by register in the order Linux's virtio_mmio.c uses. */
final class MmioRig extends BaseRig {
    private final MmioTransport t;

    MmioRig(VirtioDevice device, GuestMemory memory, long wanted, QueueHost host) {
        super(Kind.MMIO, memory);
        this.t = new MmioTransport(device, memory, host, InterruptLine.NONE);
        restart(wanted);
    }

    private int r(int off) {
        return t.read(off, 4);
    }

    private void w(int off, int v) {
        t.write(off, 4, v);
    }

    @Override
    public void restart(long wanted) {
        w(STATUS, 0);
        w(STATUS, DeviceStatus.ACKNOWLEDGE);
        w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        w(DEVICE_FEATURES_SEL, 1);
        long offered = (long) r(DEVICE_FEATURES) << 32;
        w(DEVICE_FEATURES_SEL, 0);
        offered |= Integer.toUnsignedLong(r(DEVICE_FEATURES));
        features = offered & wanted;
        w(DRIVER_FEATURES_SEL, 1);
        w(DRIVER_FEATURES, (int) (features >>> 32));
        w(DRIVER_FEATURES_SEL, 0);
        w(DRIVER_FEATURES, (int) features);
        w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        if ((r(STATUS) & DeviceStatus.FEATURES_OK) == 0) {
            throw new IllegalStateException("the device refused features 0x" + Long.toHexString(features));
        }
        w(STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
    }

    @Override
    public void startQueue(int index, int size, long desc, long avail, long used) {
        w(QUEUE_SEL, index);
        w(QUEUE_NUM, size);
        w(QUEUE_DESC_LOW, (int) desc);
        w(QUEUE_DESC_HIGH, (int) (desc >>> 32));
        w(QUEUE_DRIVER_LOW, (int) avail);
        w(QUEUE_DRIVER_HIGH, (int) (avail >>> 32));
        w(QUEUE_DEVICE_LOW, (int) used);
        w(QUEUE_DEVICE_HIGH, (int) (used >>> 32));
        w(QUEUE_READY, 1);
    }

    @Override
    public boolean kickAndWait(int index, BooleanSupplier done, long millis) {
        w(QUEUE_NOTIFY, index);
        boolean ok = Rigs.await(done, millis);
        w(INTERRUPT_ACK, r(INTERRUPT_STATUS));
        return ok;
    }

    @Override
    public int stopQueue(int index) {
        w(QUEUE_SEL, index);
        w(QUEUE_READY, 0);
        return -1; // MMIO has no way to ask; the driver knows its own avail index
    }

    @Override
    public boolean needsReset() {
        return (r(STATUS) & DeviceStatus.DEVICE_NEEDS_RESET) != 0;
    }

    @Override
    public void reset() {
        w(STATUS, 0);
    }

    @Override
    public void close() {
        t.close();
    }
}
