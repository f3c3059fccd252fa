package org.jvirtio.net;

import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

import com.google.inject.Module;

import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;

/**
 * {@code bin/vhost-user net}: a virtio-net device for QEMU's {@code -netdev vhost-user}, as one
 * port of a named switch. Every {@code net} part of one process naming the same {@code --switch}
 * is a port of that switch.
 */
public final class NetCommand implements DeviceCommand<VirtioNetDevice> {
    String switchName;
    String mac;
    int mtu;
    int pairs;
    String offloads;
    String mergeable;
    boolean antiSpoof;
    String allowIp;
    long rateLimit;
    String tap;
    private SwitchPort port;
    private String uplink;

    @Override
    public String name() {
        return "net";
    }

    @Override
    public String description() {
        return "virtio-net, one port of a learning switch: QEMU's -netdev vhost-user with virtio-net-pci.";
    }

    @Override
    public Class<VirtioNetDevice> deviceClass() {
        return VirtioNetDevice.class;
    }

    @Override
    public void flags(Flags flags) {
        flags.string("--switch", "NAME", "The switch this port is on: ports naming the same switch forward to each other.", "default",
                v -> switchName = v);
        flags.string("--mac", "MAC", "The MAC address offered in the configuration space (default: a random local address).", "",
                v -> mac = v);
        flags.integer("--mtu", "BYTES", "The MTU offered to the driver (VIRTIO_NET_F_MTU), 68 to 65535.", 1500, v -> mtu = v);
        flags.integer("--queue-pairs", "N", "Receive/transmit queue pairs (MQ above 1; QEMU's -netdev ...,queues=N).", 1, v -> pairs = v);
        flags.string("--offloads", "on|off", "Offer checksum and TCP segmentation offloads (CSUM, GUEST_CSUM, HOST_/GUEST_TSO4/6).", "on",
                v -> offloads = v);
        flags.string("--mrg-rxbuf", "on|off", "Offer merged receive buffers (MRG_RXBUF).", "on", v -> mergeable = v);
        flags.string("--tap", "NAME", "Also join host tap device NAME (created if it does not exist) to the switch as its uplink "
                + "(needs CAP_NET_ADMIN; several ports naming the same tap share it).", "", v -> tap = v);
        flags.toggle("--anti-spoof", "Drop frames this port sends from another MAC address than --mac (and, with --allow-ip, "
                + "IPv4 and ARP from other addresses).", () -> antiSpoof = true);
        flags.string("--allow-ip", "A.B.C.D[,...]", "With --anti-spoof: the IPv4 addresses this port may send from.", "", v -> allowIp = v);
        flags.longInteger("--rate-limit", "FRAMES", "Drop what this port sends beyond this many frames a second (0: no limit).", 0,
                v -> rateLimit = v);
    }

    private static boolean onOff(String flag, String v) {
        return switch (v) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new IllegalArgumentException(flag + " must be on or off, got " + v);
        };
    }

    @Override
    public List<Module> modules() {
        if (switchName.isEmpty()) {
            throw new IllegalArgumentException("--switch must name a switch");
        }
        long m = mac.isEmpty() ? randomMac() : NetOptions.parseMac(mac);
        NetOptions options = new NetOptions(m, mtu, pairs, onOff("--offloads", offloads), onOff("--mrg-rxbuf", mergeable));
        if (!allowIp.isEmpty() && !antiSpoof) {
            throw new IllegalArgumentException("--allow-ip needs --anti-spoof");
        }
        if (antiSpoof && mac.isEmpty()) {
            throw new IllegalArgumentException("--anti-spoof needs --mac (the address the guest is given)");
        }
        int[] ips = allowIp.isEmpty() ? new int[0]
                : java.util.Arrays.stream(allowIp.split(",")).mapToInt(AntiSpoofing::parseIpv4).toArray();
        if (rateLimit < 0) {
            throw new IllegalArgumentException("--rate-limit must not be negative, got " + rateLimit);
        }
        RateLimitStage limit = rateLimit > 0 ? new RateLimitStage(rateLimit) : null;
        NetSwitch sw = NetSwitch.named(switchName);
        if (!tap.isEmpty()) {
            try {
                sw.uplink(tap);
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("--tap " + tap + ": " + e.getMessage());
            }
            uplink = tap;
        }
        SwitchPort p = sw.join(NetOptions.formatMac(m));
        port = p;
        return List.of(new NetModule(p, options), b -> {
            if (antiSpoof) {
                NetModule.stages(b).addBinding().toInstance(new AntiSpoofing(m, ips));
            }
            if (limit != null) {
                NetModule.stages(b).addBinding().toInstance(limit);
            }
        });
    }

    /** A random locally administered unicast address. */
    static long randomMac() {
        long m = ThreadLocalRandom.current().nextLong() & 0xffff_ffff_ffffL;
        return (m & ~0x0100_0000_0000L) | 0x0200_0000_0000L;
    }

    @Override
    public String describe(VirtioNetDevice device) {
        NetOptions o = device.options();
        return "port " + device.port().id() + " of switch " + switchName + ", mac " + NetOptions.formatMac(o.mac()) + ", mtu " + o.mtu()
                + ", " + o.pairs() + " queue pair" + (o.pairs() == 1 ? "" : "s") + ", offloads " + offloads + ", mrg_rxbuf " + mergeable
                + (tap.isEmpty() ? "" : ", uplink tap " + tap) + (antiSpoof ? ", anti-spoofing" : "") + (rateLimit > 0 ? ", at most " + rateLimit + " frames/s" : "");
    }

    @Override
    public String qemuDeviceOptions(VirtioNetDevice device) {
        return ",mac=" + NetOptions.formatMac(device.options().mac()) + (pairs > 1 ? ",mq=on" : "");
    }

    @Override
    public String stats(VirtioNetDevice device) {
        return device.port().stats();
    }

    @Override
    public void close() {
        if (port != null) {
            port.owner().leave(port);
            if (uplink != null) {
                port.owner().releaseUplink(uplink);
                uplink = null;
            }
            port = null;
        }
    }
}
