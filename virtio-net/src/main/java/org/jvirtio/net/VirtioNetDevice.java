package org.jvirtio.net;

import java.io.IOException;
import java.io.UncheckedIOException;

import com.google.inject.Inject;

import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.ConfigSpace;
import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-net (VIRTIO 1.3, 5.1) as one port of a {@link NetSwitch}: queue pairs (receiveq 2n,
 * transmitq 2n+1; no control queue: QEMU keeps vhost-user-net's to itself), the 12-byte
 * header of VERSION_1, MAC, STATUS, MTU and MRG_RXBUF, and the checksum and TCP segmentation
 * offloads passed between guests as they are.
 */
public final class VirtioNetDevice extends AbstractVirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioNetDevice.class);
    /** The largest queue a driver may give a port. */
    public static final int MAX_QUEUE_SIZE = 4096;

    private final SwitchPort port;
    private final NetOptions options;
    private final ConfigSpace.Field mac = config().bytes(VirtioNet.CONFIG_MAC, 6);
    private final ConfigSpace.Field status = config().u16(VirtioNet.CONFIG_STATUS);
    private final ConfigSpace.Field maxPairs = config().u16(VirtioNet.CONFIG_MAX_PAIRS);
    private final ConfigSpace.Field mtu = config().u16(VirtioNet.CONFIG_MTU);
    private volatile long negotiated;
    private final FrameStage[] stages;

    /** A port without forwarding stages. */
    public VirtioNetDevice(SwitchPort port, NetOptions options) {
        this(port, options, java.util.Set.of(), java.util.Set.of());
    }

    /**
     * @param stages       the port's forwarding stages, run in the set's order on every frame it sends
     * @param switchStages stages for the whole switch (added to it once each; run on every port's frames)
     */
    @Inject
    public VirtioNetDevice(SwitchPort port, NetOptions options, java.util.Set<FrameStage> stages,
            @com.google.inject.name.Named(NetModule.SWITCH) java.util.Set<FrameStage> switchStages) {
        super(VirtioNet.DEVICE_ID, new ConfigSpace(VirtioNet.CONFIG_SIZE));
        this.port = port;
        this.options = options;
        this.stages = stages.toArray(FrameStage[]::new);
        for (FrameStage s : switchStages) {
            port.owner().addStage(s);
        }
        byte[] m = new byte[6];
        for (int i = 0; i < 6; i++) {
            m[i] = (byte) (options.mac() >>> (8 * (5 - i)));
        }
        mac.set(m);
        status.set(port.adminUp() ? VirtioNet.S_LINK_UP : 0);
        maxPairs.set(options.pairs());
        mtu.set(options.mtu());
    }

    public SwitchPort port() {
        return port;
    }

    public NetOptions options() {
        return options;
    }

    FrameStage[] stages() {
        return stages;
    }

    int mtu() {
        return options.mtu();
    }

    @Override
    public long deviceFeatures() {
        long f = bit(VirtioNet.F_MAC) | bit(VirtioNet.F_STATUS) | bit(VirtioNet.F_MTU);
        if (options.mergeable()) {
            f |= bit(VirtioNet.F_MRG_RXBUF);
        }
        if (options.offloads()) {
            f |= bit(VirtioNet.F_CSUM) | bit(VirtioNet.F_GUEST_CSUM) | bit(VirtioNet.F_HOST_TSO4) | bit(VirtioNet.F_HOST_TSO6)
                    | bit(VirtioNet.F_GUEST_TSO4) | bit(VirtioNet.F_GUEST_TSO6);
        }
        return f;
    }

    /**
     * What needs the control queue (VIRTIO 1.3, 5.1.3.1), offered over vhost-user only, where
     * QEMU serves that queue (CTRL_VQ is QEMU's own there): GUEST_ANNOUNCE, after a migration QEMU
     * raises ANNOUNCE in the status it serves and the guest sends its gratuitous ARPs and
     * neighbour advertisements through its own transmit queue, from which the switch learns its
     * new port (guests without it get SEND_RARP); and MQ with more than one pair, the pairs
     * enabled by QEMU's SET_VRING_ENABLE after the guest's VIRTIO_NET_CTRL_MQ command.
     */
    @Override
    public long frontEndControlQueueFeatures() {
        return bit(VirtioNet.F_GUEST_ANNOUNCE) | (options.pairs() > 1 ? bit(VirtioNet.F_MQ) : 0);
    }

    private static long bit(int b) {
        return 1L << b;
    }

    @Override
    public int queueCount() {
        return 2 * options.pairs();
    }

    @Override
    public int maxQueueSize(int index) {
        return MAX_QUEUE_SIZE;
    }

    @Override
    public void activate(DeviceContext context) {
        super.activate(context);
        negotiated = context.negotiatedFeatures();
    }

    @Override
    public QueueHandler openQueue(QueueBinding queue) {
        int pair = queue.index() / 2;
        if (queue.index() % 2 == 1) {
            return new TxQueue(this, port, pair, queue, negotiated);
        }
        try {
            return new RxQueue(this, port, pair, queue, negotiated);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Takes the port administratively down or up: a port that is down forwards nothing either
     * way, and its driver sees the link go down (STATUS, with a configuration change).
     */
    public void adminUp(boolean up) {
        port.adminUp(up);
        status.set(up ? VirtioNet.S_LINK_UP : 0);
        DeviceContext c = context();
        if (c != null) {
            c.notifyConfigChange();
        }
    }

    @Override
    public boolean announces() {
        return true;
    }

    /**
     * vhost-user SEND_RARP after a migration: a RARP request from {@code mac}, broadcast from this
     * port (as QEMU's own network back-ends announce a guest), so the switch and whatever lies
     * behind its uplink learn the guest's new place at once.
     */
    @Override
    public void announce(long mac) {
        // The front-end names the address; it may not name a group address or none, and the
        // frame goes through the port's stages like the guest's own (with --anti-spoof, an
        // address that is not the port's is dropped there: no stealing another guest's traffic).
        if (mac == 0 || (mac & 0x0100_0000_0000L) != 0) {
            LOG.warn("{}: SEND_RARP for {} refused: not a unicast address", port, NetOptions.formatMac(mac));
            return;
        }
        if (!port.adminUp()) {
            LOG.info("{}: SEND_RARP for {} not sent: the port is down", port, NetOptions.formatMac(mac));
            return;
        }
        byte[] f = new byte[60];
        for (int i = 0; i < 6; i++) {
            byte b = (byte) (mac >>> (8 * (5 - i)));
            f[i] = (byte) 0xff;
            f[6 + i] = b;
            f[22 + i] = b; // sender hardware address
            f[32 + i] = b; // target hardware address
        }
        f[12] = (byte) 0x80;
        f[13] = 0x35; // RARP
        f[15] = 1;    // Ethernet
        f[16] = 0x08; // IPv4
        f[18] = 6;
        f[19] = 4;
        f[21] = 3;    // reverse request
        try {
            FrameStage refused = port.owner().inject(port, f, stages());
            if (refused != null) {
                LOG.warn("{}: SEND_RARP for {} dropped by {}", port, NetOptions.formatMac(mac), refused.getClass().getSimpleName());
                return;
            }
            LOG.info("{}: announced {} after a migration", port, NetOptions.formatMac(mac));
        } catch (IOException | RuntimeException e) {
            LOG.warn("{}: could not announce {}: {}", port, NetOptions.formatMac(mac), e.toString());
        }
    }

    /** A frame was dropped at {@code where}; the counters have it, the log says why (at most once a second). */
    void dropped(SwitchPort where, String why) {
        if (LOG.isDebugEnabled()) {
            LOG.debug("{}: frame dropped: {}", where, why);
        }
    }

    @Override
    public String toString() {
        return "virtio-net " + port;
    }
}
