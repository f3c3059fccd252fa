package org.jvirtio.testkit.transports;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.BooleanSupplier;

import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.host.QueueHost;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import org.jvirtio.transport.vhostuser.VhostUserFrontend;
import org.jvirtio.transport.vhostuser.VhostUserProtocol;

/** A real vhost-user backend on a Unix socket, driven by the Java front-end as QEMU would. */
final class VhostUserRig extends BaseRig {
    private final Path dir;
    private final VhostUserBackend backend;
    private final VhostUserFrontend fe;
    private final EventFd[] kicks;
    private final EventFd[] calls;

    VhostUserRig(VirtioDevice device, GuestMemory memory, long wanted, QueueHost host) throws IOException {
        super(Kind.VHOST_USER, memory);
        this.dir = TransportRig.socketDirectory();
        this.backend = VhostUserBackend.start(dir.resolve("rig.sock"), device, host);
        this.fe = VhostUserFrontend.connect(dir.resolve("rig.sock"));
        this.kicks = new EventFd[device.queueCount()];
        this.calls = new EventFd[device.queueCount()];
        restart(wanted);
    }

    @Override
    public void restart(long wanted) throws IOException {
        features = fe.negotiate(wanted, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES);
        fe.setMemTable(memory);
        fe.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
    }

    @Override
    public void startQueue(int index, int size, long desc, long avail, long used) throws IOException {
        try {
            kicks[index] = EventFd.create(true);
            calls[index] = EventFd.create(true);
        } catch (ErrnoException e) {
            throw new IOException(e.getMessage(), e);
        }
        fe.setVringNum(index, size);
        boolean packed = org.jvirtio.api.VirtioFeatures.has(features, org.jvirtio.api.VirtioFeatures.RING_PACKED);
        fe.setVringBase(index, packed ? org.jvirtio.ring.PackedQueue.FRESH | org.jvirtio.ring.PackedQueue.FRESH << 16 : 0);
        fe.setVringAddr(index, desc, avail, used);
        fe.setVringCall(index, calls[index]);
        fe.setVringKick(index, kicks[index]);
        fe.setVringEnable(index, true);
    }

    @Override
    public boolean kickAndWait(int index, BooleanSupplier done, long millis) {
        if (kicks[index] == null) {
            return done.getAsBoolean();
        }
        kicks[index].signal();
        return Rigs.await(done, millis);
    }

    @Override
    public int stopQueue(int index) throws IOException {
        if (kicks[index] == null) {
            return 0;
        }
        int base = fe.getVringBase(index);
        kicks[index].close();
        calls[index].close();
        kicks[index] = null;
        calls[index] = null;
        return base;
    }

    @Override
    public boolean needsReset() throws IOException {
        return (fe.getStatus() & DeviceStatus.DEVICE_NEEDS_RESET) != 0;
    }

    @Override
    public void reset() throws IOException {
        for (int i = 0; i < kicks.length; i++) {
            stopQueue(i);
        }
        fe.resetDevice();
    }

    @Override
    public void close() throws IOException {
        try {
            for (int i = 0; i < kicks.length; i++) {
                if (kicks[i] != null) {
                    kicks[i].close();
                    calls[i].close();
                }
            }
            fe.close();
        } finally {
            backend.close();
            Files.deleteIfExists(dir.resolve("rig.sock"));
            Files.deleteIfExists(dir);
        }
    }
}
