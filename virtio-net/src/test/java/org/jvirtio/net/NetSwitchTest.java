package org.jvirtio.net;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.vhostuser.DriverSession;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.Parameter;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Ports of one switch served over vhost-user in this process, driven by the driver kit as guests
 * drive them: forwarding, learning, flooding, merged buffers, checksums finished for a driver
 * without GUEST_CSUM, and what a hostile driver sends dropped and counted. On both ring layouts.
 */
@ParameterizedClass(name = "packed={0}")
@ValueSource(booleans = {false, true})
class NetSwitchTest {
    static final long A = 0x5254_0000_000aL;
    static final long B = 0x5254_0000_000bL;
    static final long C = 0x5254_0000_000cL;
    static final long BROADCAST = 0xffff_ffff_ffffL;
    static final AtomicInteger SWITCHES = new AtomicInteger();

    @Parameter
    boolean packed;
    @TempDir
    Path dir;
    final List<AutoCloseable> open = new ArrayList<>();
    final String sw = "test" + SWITCHES.incrementAndGet();

    @AfterEach
    void tearDown() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    long wanted(long notWanted) {
        long all = ~0L & ~notWanted;
        return packed ? all : all & ~(1L << VirtioFeatures.RING_PACKED);
    }

    VhostUserRunner.Running<?> port(String name, String... extra) throws Exception {
        List<String> args = new ArrayList<>(List.of("net", "--socket", dir.resolve(name).toString(), "--switch", sw, "--poll-us", "0"));
        args.addAll(Arrays.asList(extra));
        VhostUserRunner.Running<?> r = VhostUserRunner.start(VhostUserRunner.devices(), args.toArray(String[]::new));
        open.add(r);
        return r;
    }

    NetDriver driver(String name, long notWanted, int rxBufSize) throws Exception {
        NetDriver d = new NetDriver(dir.resolve(name), wanted(notWanted), rxBufSize);
        open.add(d);
        assertEquals(packed, d.has(VirtioFeatures.RING_PACKED));
        return d;
    }

    static SwitchPort portOf(VhostUserRunner.Running<?> r) {
        return ((VirtioNetDevice) r.device()).port();
    }

    /**
     * GUEST_ANNOUNCE, and MQ with more than one pair, need the control queue (VIRTIO 1.3,
     * 5.1.3.1): offered over vhost-user, where QEMU serves that queue (CTRL_VQ is never the
     * backend's), and not in what a transport that hands the device every queue offers.
     */
    @Test
    void guestAnnounceAndMqAreOfferedWhereTheFrontEndServesTheControlQueue() throws Exception {
        var one = port("a.sock");
        var two = port("b.sock", "--queue-pairs", "2");
        NetDriver a = driver("a.sock", 0, 2048);
        assertTrue(a.has(VirtioNet.F_GUEST_ANNOUNCE));
        assertFalse(a.has(VirtioNet.F_MQ), "one pair: no MQ");
        assertFalse(a.has(VirtioNet.F_CTRL_VQ), "the control queue is the front-end's");
        try (DriverSession s = DriverSession.connect(dir.resolve("b.sock"), 1 << 20)) {
            long offered = s.frontend().getFeatures();
            assertEquals(1L << VirtioNet.F_GUEST_ANNOUNCE | 1L << VirtioNet.F_MQ,
                    offered & (1L << VirtioNet.F_GUEST_ANNOUNCE | 1L << VirtioNet.F_MQ | 1L << VirtioNet.F_CTRL_VQ));
        }
        for (var p : List.of(one, two)) {
            long mmio = org.jvirtio.api.FeatureNegotiation.offeredWithPacked(p.device());
            assertEquals(0, mmio & (1L << VirtioNet.F_GUEST_ANNOUNCE | 1L << VirtioNet.F_MQ));
        }
    }

    @Test
    void broadcastIsFloodedAndTheReplyIsLearnedAndSentToOnePort() throws Exception {
        var pa = port("a.sock");
        var pb = port("b.sock");
        var pc = port("c.sock");
        NetDriver a = driver("a.sock", 0, 2048);
        NetDriver b = driver("b.sock", 0, 2048);
        NetDriver c = driver("c.sock", 0, 2048);
        a.post(8);
        b.post(8);
        c.post(8);
        byte[] hello = NetDriver.frame(BROADCAST, A, 100);
        a.send(hello);
        assertEquals(1, a.sent(1, 5000), "the sender's chain came back");
        List<NetDriver.Received> atB = b.receive(1, 5000);
        List<NetDriver.Received> atC = c.receive(1, 5000);
        assertEquals(1, atB.size());
        assertArrayEquals(hello, atB.get(0).frame());
        assertEquals(1, atB.get(0).numBuffers());
        assertEquals(0, atB.get(0).flags());
        assertArrayEquals(hello, atC.get(0).frame());
        // B answers A: A was learned on its port, so C does not see it.
        byte[] reply = NetDriver.frame(A, B, 1400);
        b.send(reply);
        assertArrayEquals(reply, a.receive(1, 5000).get(0).frame());
        assertEquals(0, c.receive(1, 300).size(), "unicast to a learned address goes to its port alone");
        // A to B: learned from the reply.
        byte[] data = NetDriver.frame(B, A, 60);
        a.send(data);
        assertArrayEquals(data, b.receive(1, 5000).get(0).frame());
        // The header in a buffer of its own, the frame in two (Linux without can_push): the same frame arrives.
        byte[] pieces = NetDriver.frame(B, A, 1000);
        a.sendInPieces(pieces);
        assertArrayEquals(pieces, b.receive(1, 5000).get(0).frame());
        assertEquals(0, c.receive(1, 300).size());
        assertEquals(3, portOf(pa).txFrames());
        assertEquals(1, portOf(pc).rxFrames());
        assertEquals(3, portOf(pb).rxFrames());
        assertSame(portOf(pa), portOf(pa).owner().portOf(A));
    }

    @Test
    void aFrameForAPortWithoutBuffersIsDroppedAndNotHeldAgainstTheSender() throws Exception {
        port("a.sock");
        var pb = port("b.sock");
        NetDriver a = driver("a.sock", 0, 2048);
        NetDriver b = driver("b.sock", 0, 2048);
        for (int i = 0; i < 10; i++) {
            a.send(NetDriver.frame(B, A, 100));
        }
        assertEquals(10, a.sent(10, 5000), "every chain back although B offered no buffer");
        assertEquals(10, portOf(pb).rxDropped());
        b.post(4);
        byte[] later = NetDriver.frame(B, A, 77);
        a.send(later);
        List<NetDriver.Received> got = b.receive(2, 2000);
        assertEquals(1, got.size(), "only the frame sent after the buffers came");
        assertArrayEquals(later, got.get(0).frame());
    }

    @Test
    void aLargeFrameSpansMergedBuffersAndIsDroppedWhenTooFewAreThere() throws Exception {
        port("a.sock", "--mtu", "9000");
        var pb = port("b.sock", "--mtu", "9000");
        NetDriver a = driver("a.sock", 0, 2048);
        NetDriver b = driver("b.sock", 0, 1024);
        assertTrue(b.has(VirtioNet.F_MRG_RXBUF));
        b.post(2);
        byte[] big = NetDriver.frame(B, A, 3000);
        a.send(big);
        assertEquals(1, a.sent(1, 5000));
        assertEquals(0, b.receive(1, 300).size(), "two buffers of 1 KiB cannot hold 3 KiB");
        assertEquals(1, portOf(pb).rxDropped());
        byte[] small = NetDriver.frame(B, A, 500);
        a.send(small);
        List<NetDriver.Received> got = b.receive(1, 5000);
        assertArrayEquals(small, got.get(0).frame(), "the buffers were put back, not used");
        b.post(6);
        a.send(big);
        got = b.receive(1, 5000);
        assertEquals(1, got.size());
        assertEquals(3, got.get(0).numBuffers(), "12 + 3014 bytes in buffers of 1024");
        assertArrayEquals(big, got.get(0).frame());
        a.send(small);
        assertArrayEquals(small, b.receive(1, 5000).get(0).frame(), "and the ring goes on after them");
    }

    @Test
    void withoutMergedBuffersAFrameLargerThanABufferIsDropped() throws Exception {
        port("a.sock", "--mtu", "9000");
        var pb = port("b.sock", "--mtu", "9000");
        NetDriver a = driver("a.sock", 0, 2048);
        NetDriver b = driver("b.sock", 1L << VirtioNet.F_MRG_RXBUF, 1024);
        b.post(4);
        a.send(NetDriver.frame(B, A, 3000));
        assertEquals(1, a.sent(1, 5000));
        byte[] small = NetDriver.frame(B, A, 900);
        a.send(small);
        List<NetDriver.Received> got = b.receive(2, 2000);
        assertEquals(1, got.size());
        assertArrayEquals(small, got.get(0).frame());
        assertEquals(0, got.get(0).numBuffers(), "num_buffers is the driver's field only with MRG_RXBUF");
        assertEquals(1, portOf(pb).rxDropped());
    }

    /** A UDP/IPv4 datagram with a partial checksum (the pseudo-header sum in the field), as Linux sends with CSUM. */
    static byte[] udp(long dst, long src, int payload) {
        byte[] f = NetDriver.frame(dst, src, 20 + 8 + payload);
        int ip = 14;
        f[ip] = 0x45;
        int total = 20 + 8 + payload;
        f[ip + 2] = (byte) (total >> 8);
        f[ip + 3] = (byte) total;
        f[ip + 8] = 64;
        f[ip + 9] = 17;
        byte[] sa = {10, 0, 0, 1};
        byte[] da = {10, 0, 0, 2};
        System.arraycopy(sa, 0, f, ip + 12, 4);
        System.arraycopy(da, 0, f, ip + 16, 4);
        int udp = ip + 20;
        f[udp] = 0x13;
        f[udp + 1] = (byte) 0x88;
        f[udp + 2] = 0x17;
        f[udp + 3] = 0x70;
        f[udp + 4] = (byte) ((8 + payload) >> 8);
        f[udp + 5] = (byte) (8 + payload);
        f[udp + 6] = 0;
        f[udp + 7] = 0;
        long pseudo = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 8 + payload;
        while ((pseudo >> 16) != 0) {
            pseudo = (pseudo & 0xffff) + (pseudo >> 16);
        }
        f[udp + 6] = (byte) (pseudo >> 8);
        f[udp + 7] = (byte) pseudo;
        return f;
    }

    /** The ones'-complement sum of the UDP datagram with its pseudo-header: 0xffff when the checksum is right. */
    static int udpCheck(byte[] f) {
        int ip = 14;
        int udp = ip + 20;
        int len = f.length - udp;
        long sum = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + len;
        for (int i = udp; i < f.length; i += 2) {
            int hi = f[i] & 0xff;
            int lo = i + 1 < f.length ? f[i + 1] & 0xff : 0;
            sum += (hi << 8) | lo;
        }
        while ((sum >> 16) != 0) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (int) sum;
    }

    @Test
    void aPartialChecksumIsFinishedForADriverWithoutGuestCsumAndPassedToOneWithIt() throws Exception {
        port("a.sock");
        port("b.sock");
        port("c.sock");
        NetDriver a = driver("a.sock", 0, 2048);
        NetDriver b = driver("b.sock", 1L << VirtioNet.F_GUEST_CSUM | 1L << VirtioNet.F_GUEST_TSO4 | 1L << VirtioNet.F_GUEST_TSO6, 2048);
        NetDriver c = driver("c.sock", 0, 2048);
        assertTrue(a.has(VirtioNet.F_CSUM));
        assertFalse(b.has(VirtioNet.F_GUEST_CSUM));
        b.post(4);
        c.post(4);
        for (int payload : new int[] {0, 1, 333, 1400}) {
            byte[] d = udp(BROADCAST, A, payload);
            assertNotEquals(0xffff, udpCheck(d), "partial: not a valid checksum yet");
            a.send(d, VirtioNet.HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 6);
            NetDriver.Received atB = b.receive(1, 5000).get(0);
            assertEquals(0, atB.flags(), "finished: nothing left for B to do");
            assertEquals(0xffff, udpCheck(atB.frame()), "the checksum is right, payload " + payload);
            byte[] rest = atB.frame().clone();
            rest[40] = d[40];
            rest[41] = d[41];
            assertArrayEquals(d, rest, "nothing but the checksum changed");
            NetDriver.Received atC = c.receive(1, 5000).get(0);
            assertEquals(VirtioNet.HDR_F_NEEDS_CSUM, atC.flags(), "C finishes it itself");
            assertEquals(34, atC.csumStart());
            assertEquals(6, atC.csumOffset());
            assertArrayEquals(d, atC.frame());
            b.post(1);
            c.post(1);
        }
    }

    @Test
    void whatAHostileDriverSendsIsDroppedCountedAndNeverForwarded() throws Exception {
        var pa = port("a.sock");
        var pb = port("b.sock");
        NetDriver a = driver("a.sock", 1L << VirtioNet.F_HOST_TSO6, 2048);
        NetDriver b = driver("b.sock", 0, 2048);
        b.post(16);
        byte[] ok = NetDriver.frame(B, A, 100);
        a.sendRaw(new byte[5]);                                                 // shorter than the header
        a.sendRaw(new byte[VirtioNet.HDR_SIZE + 10]);                           // no room for an Ethernet header
        a.send(ok, VirtioNet.HDR_F_NEEDS_CSUM, VirtioNet.GSO_TCPV4, 54, 0, 34, 16); // GSO size 0
        a.send(ok, VirtioNet.HDR_F_NEEDS_CSUM, VirtioNet.GSO_TCPV6, 74, 1000, 54, 16); // TSO6 not negotiated
        a.send(ok, 0, VirtioNet.GSO_TCPV4, 54, 1000, 0, 0);                     // GSO without a partial checksum
        a.send(ok, VirtioNet.HDR_F_NEEDS_CSUM, VirtioNet.GSO_TCPV4 | VirtioNet.GSO_ECN, 54, 1000, 34, 16); // ECN
        a.send(ok, VirtioNet.HDR_F_NEEDS_CSUM, 0, 0, 0, 100, 16);               // checksum past the frame
        a.send(ok, VirtioNet.HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 200);               // offset past the frame
        a.send(ok, VirtioNet.HDR_F_NEEDS_CSUM, 0, 0, 0, 4, 0);                  // checksum inside the Ethernet header
        a.send(ok, 0, 0, 5000, 0, 0, 0);                                        // hdr_len past the frame
        a.send(ok, 0, VirtioNet.GSO_UDP, 54, 1000, 34, 6);                      // UFO, never offered
        a.send(NetDriver.frame(B, A, 1600));                                    // over the MTU without GSO
        a.send(NetDriver.frame(B, 0x0100_0000_0001L, 100));                    // multicast source
        assertEquals(13, a.sent(13, 5000), "every chain came back");
        assertEquals(13, portOf(pa).txDropped());
        assertEquals(0, b.receive(1, 300).size(), "nothing was forwarded");
        assertEquals(0, portOf(pa).txFrames());
        a.send(ok);
        assertArrayEquals(ok, b.receive(1, 5000).get(0).frame(), "the port works on");
        assertEquals(0, portOf(pb).rxDropped());
    }

    /** A TCP segment over IPv4 (v6 false) or IPv6 with {@code payload} bytes, flags PSH|FIN|CWR|ACK, the checksum field partial as Linux leaves it. */
    static byte[] tcp(long dst, long src, boolean v6, int payload) {
        int l3 = 14;
        int l4 = l3 + (v6 ? 40 : 20);
        int tcpLen = 32; // with 12 bytes of options (timestamps)
        byte[] f = NetDriver.frame(dst, src, l4 - 14 + tcpLen + payload);
        f[12] = (byte) (v6 ? 0x86 : 0x08);
        f[13] = (byte) (v6 ? 0xdd : 0x00);
        java.util.Arrays.fill(f, l3, l4 + tcpLen, (byte) 0);
        if (v6) {
            f[l3] = 0x60;
            f[l3 + 6] = 6;
            f[l3 + 7] = 64;
            f[l3 + 8] = (byte) 0xfd;
            f[l3 + 23] = 1;
            f[l3 + 24] = (byte) 0xfd;
            f[l3 + 39] = 2;
        } else {
            f[l3] = 0x45;
            f[l3 + 4] = 0x12;
            f[l3 + 5] = 0x34;
            f[l3 + 8] = 64;
            f[l3 + 9] = 6;
            f[l3 + 12] = 10;
            f[l3 + 15] = 1;
            f[l3 + 16] = 10;
            f[l3 + 19] = 2;
        }
        f[l4] = 0x30;
        f[l4 + 1] = 0x39;
        f[l4 + 2] = 0x00;
        f[l4 + 3] = 0x50;
        f[l4 + 4] = (byte) 0xff; // a sequence number that wraps
        f[l4 + 5] = (byte) 0xff;
        f[l4 + 6] = (byte) 0xf0;
        f[l4 + 12] = (byte) ((tcpLen / 4) << 4);
        f[l4 + 13] = (byte) (0x80 | 0x10 | 0x08 | 0x01);
        f[l4 + 14] = (byte) 0xff;
        for (int k = 20; k < tcpLen; k++) {
            f[l4 + k] = (byte) (k == 20 ? 1 : k); // options bytes (NOP then junk: never parsed)
        }
        return f;
    }

    static int u16(byte[] b, int at) {
        return ((b[at] & 0xff) << 8) | (b[at + 1] & 0xff);
    }

    static long sum(byte[] b, int from, int n) {
        long s = 0;
        for (int i = 0; i < n; i += 2) {
            s += ((b[from + i] & 0xff) << 8) | (i + 1 < n ? b[from + i + 1] & 0xff : 0);
        }
        return s;
    }

    static int fold(long s) {
        while ((s >> 16) != 0) {
            s = (s & 0xffff) + (s >> 16);
        }
        return (int) s;
    }

    /** Checks {@code segs} are {@code original} cut at {@code mss}: headers, checksums, sequence numbers, flags, payload. */
    static void checkSegments(byte[] original, boolean v6, int mss, List<NetDriver.Received> segs) {
        int l3 = 14;
        int l4 = l3 + (v6 ? 40 : 20);
        int hdrs = l4 + 32;
        int payload = original.length - hdrs;
        assertEquals((payload + mss - 1) / mss, segs.size());
        java.io.ByteArrayOutputStream joined = new java.io.ByteArrayOutputStream();
        for (int i = 0; i < segs.size(); i++) {
            NetDriver.Received r = segs.get(i);
            byte[] s = r.frame();
            assertEquals(0, r.gsoType());
            assertEquals(0, r.flags(), "complete checksums");
            int len = Math.min(mss, payload - i * mss);
            assertEquals(hdrs + len, s.length);
            assertArrayEquals(Arrays.copyOf(original, l3), Arrays.copyOf(s, l3), "Ethernet header");
            if (v6) {
                assertEquals(32 + len, u16(s, l3 + 4), "payload length");
            } else {
                assertEquals(20 + 32 + len, u16(s, l3 + 2), "total length");
                assertEquals(0x1234 + i, u16(s, l3 + 4), "id");
                assertEquals(0xffff, fold(sum(s, l3, 20)), "IPv4 header checksum");
            }
            long seq = ((long) u16(s, l4 + 4) << 16 | u16(s, l4 + 6));
            assertEquals((0xfffff000L + (long) i * mss) & 0xffffffffL, seq, "sequence number");
            int flags = s[l4 + 13] & 0xff;
            boolean last = i == segs.size() - 1;
            assertEquals(0x10 | (last ? 0x09 : 0) | (i == 0 ? 0x80 : 0), flags, "flags of segment " + i);
            long pseudo = v6 ? sum(s, l3 + 8, 32) : sum(s, l3 + 12, 8);
            pseudo += 6 + (s.length - l4);
            assertEquals(0xffff, fold(pseudo + sum(s, l4, s.length - l4)), "TCP checksum of segment " + i);
            assertArrayEquals(Arrays.copyOfRange(original, l4 + 20, hdrs), Arrays.copyOfRange(s, l4 + 20, hdrs), "options");
            joined.writeBytes(Arrays.copyOfRange(s, hdrs, s.length));
        }
        assertArrayEquals(Arrays.copyOfRange(original, hdrs, original.length), joined.toByteArray(), "the payload, in order");
    }

    /**
     * A GSO frame goes as it is to a driver that negotiated the type, and is segmented in software
     * (each segment with its own headers and a complete checksum) for one that did not; IPv4 and
     * IPv6; a frame whose headers are not what its GSO type says is dropped.
     */
    @Test
    void aGsoFrameGoesAsItIsToADriverWithTsoAndIsSegmentedForOneWithout() throws Exception {
        port("a.sock");
        var pb = port("b.sock");
        port("c.sock");
        NetDriver a = driver("a.sock", 0, 2048);
        NetDriver b = driver("b.sock", 1L << VirtioNet.F_GUEST_TSO4 | 1L << VirtioNet.F_GUEST_TSO6, 2048);
        NetDriver c = driver("c.sock", 0, 4096);
        c.post(40);
        for (boolean v6 : new boolean[] {false, true}) {
            b.post(20);
            byte[] f = tcp(BROADCAST, A, v6, 20_000);
            int gso = v6 ? VirtioNet.GSO_TCPV6 : VirtioNet.GSO_TCPV4;
            int l4 = v6 ? 54 : 34;
            a.send(f, VirtioNet.HDR_F_NEEDS_CSUM, gso, l4 + 32, 1448, l4, 16);
            assertEquals(1, a.sent(1, 5000));
            NetDriver.Received atC = c.receive(1, 5000).get(0);
            assertEquals(gso, atC.gsoType());
            assertEquals(1448, atC.gsoSize());
            assertEquals(l4 + 32, atC.hdrLen());
            assertEquals(VirtioNet.HDR_F_NEEDS_CSUM, atC.flags());
            assertArrayEquals(f, atC.frame());
            checkSegments(f, v6, 1448, b.receive(14, 5000));
            assertEquals(0, b.receive(1, 200).size(), "nothing more");
            c.post(6);
        }
        // Too few buffers for the segments (12 left): put back, dropped; the ring goes on.
        long before = portOf(pb).rxDropped();
        a.send(tcp(B, A, false, 20_000), VirtioNet.HDR_F_NEEDS_CSUM, VirtioNet.GSO_TCPV4, 66, 1448, 34, 16);
        assertEquals(1, a.sent(1, 5000));
        assertEquals(before + 1, portOf(pb).rxDropped());
        byte[] small = tcp(B, A, false, 100);
        a.send(small, VirtioNet.HDR_F_NEEDS_CSUM, VirtioNet.GSO_TCPV4, 66, 1448, 34, 16);
        checkSegments(small, false, 1448, b.receive(1, 5000));
        assertEquals(1, a.sent(1, 5000));
        // GSO TCPv4 on an ARP frame: not segmentable, dropped.
        byte[] arp = NetDriver.frame(B, A, 200);
        arp[12] = 0x08;
        arp[13] = 0x06;
        a.send(arp, VirtioNet.HDR_F_NEEDS_CSUM, VirtioNet.GSO_TCPV4, 66, 100, 34, 16);
        assertEquals(1, a.sent(1, 5000));
        assertEquals(before + 2, portOf(pb).rxDropped());
        assertEquals(0, b.receive(1, 200).size());
    }

    /**
     * One port floods broadcasts as fast as its ring allows while another sends unicast to a third:
     * the storm takes its share of the third port's queue, not all of it, and the unicast frames
     * keep arriving; every chain of the flooding port comes back.
     */
    @Test
    void aBroadcastStormDoesNotStopForwardingBetweenTheOthers() throws Exception {
        var pa = port("a.sock");
        port("c.sock");
        var pd = port("d.sock");
        NetDriver a = driver("a.sock", 0, 2048);
        NetDriver c = driver("c.sock", 0, 2048);
        NetDriver d = driver("d.sock", 0, 2048);
        long D = 0x5254_0000_000dL;
        // D is learned first, so C's frames are unicast to it.
        d.post(NetDriver.SIZE);
        d.send(NetDriver.frame(BROADCAST, D, 60));
        assertEquals(1, d.sent(1, 5000));
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicLong stormSent = new java.util.concurrent.atomic.AtomicLong();
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        Thread storm = new Thread(() -> {
            try {
                while (!stop.get()) {
                    for (int i = 0; i < NetDriver.SIZE / 2; i++) {
                        a.send(NetDriver.frame(BROADCAST, A, 1000));
                    }
                    int back = a.sent(NetDriver.SIZE / 2, 5000);
                    stormSent.addAndGet(back);
                    if (back != NetDriver.SIZE / 2) {
                        throw new AssertionError("the flooding port's chains did not all come back: " + back);
                    }
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        });
        storm.start();
        int unicast = 0;
        int arrived = 0;
        try {
            long end = System.currentTimeMillis() + 3000;
            while (System.currentTimeMillis() < end) {
                c.send(NetDriver.frame(D, C, 100));
                assertEquals(1, c.sent(1, 5000));
                unicast++;
                for (NetDriver.Received r : d.receive(NetDriver.SIZE, 2)) {
                    if (r.frame().length == 114 && TxQueue.source(r.frame()) == C) {
                        arrived++;
                    }
                    d.post(1);
                }
            }
        } finally {
            stop.set(true);
            storm.join(10_000);
        }
        assertNull(failure.get());
        assertTrue(stormSent.get() > 1000, "the storm ran: " + stormSent.get());
        assertTrue(unicast > 50, "unicast frames sent: " + unicast);
        assertTrue(arrived >= unicast / 4, arrived + " of " + unicast + " unicast frames arrived during the storm; " + portOf(pd).stats()
                + "; " + portOf(pa).stats());
    }

    /**
     * After a migration QEMU asks the port to announce the guest (SEND_RARP, for a guest without
     * GUEST_ANNOUNCE): a RARP from the guest's address is broadcast from that port, and the switch
     * sends the guest's traffic there at once.
     */
    @Test
    void sendRarpAnnouncesTheGuestFromItsNewPort() throws Exception {
        port("old.sock");
        var pn = port("new.sock");
        port("c.sock");
        NetDriver old = driver("old.sock", 0, 2048);
        NetDriver moved = driver("new.sock", 0, 2048);
        NetDriver c = driver("c.sock", 0, 2048);
        old.post(4);
        moved.post(4);
        c.post(4);
        old.send(NetDriver.frame(BROADCAST, A, 60)); // A was learned on the old port
        assertEquals(1, old.sent(1, 5000));
        c.receive(1, 5000);
        moved.receive(1, 5000);
        moved.s.frontend().sendRarp(A);
        NetDriver.Received rarp = c.receive(1, 5000).get(0);
        byte[] f = rarp.frame();
        assertEquals(60, f.length);
        assertEquals(0x8035, ((f[12] & 0xff) << 8) | (f[13] & 0xff), "a RARP");
        assertEquals(A, TxQueue.source(f));
        assertEquals(3, f[21], "reverse request");
        assertEquals(1, old.receive(1, 5000).size(), "flooded to the old port too");
        assertSame(portOf(pn), portOf(pn).owner().portOf(A), "learned on the new port");
        byte[] toA = NetDriver.frame(A, C, 80);
        c.send(toA);
        assertArrayEquals(toA, moved.receive(1, 5000).get(0).frame(), "C's frames to A reach the new port");
        assertEquals(0, old.receive(1, 300).size());
    }

    /** A port taken administratively down: its link reads down in the configuration space, and it neither sends nor receives until it is up again. */
    @Test
    void aPortTakenDownNeitherSendsNorReceivesAndItsLinkReadsDown() throws Exception {
        port("a.sock");
        var pb = port("b.sock");
        NetDriver a = driver("a.sock", 0, 2048);
        NetDriver b = driver("b.sock", 0, 2048);
        b.post(8);
        VirtioNetDevice dev = (VirtioNetDevice) pb.device();
        assertEquals(VirtioNet.S_LINK_UP, b.s.frontend().getConfig(VirtioNet.CONFIG_STATUS, 2)[0]);
        dev.adminUp(false);
        assertEquals(0, b.s.frontend().getConfig(VirtioNet.CONFIG_STATUS, 2)[0], "link down");
        a.send(NetDriver.frame(BROADCAST, A, 60));
        assertEquals(1, a.sent(1, 5000));
        assertEquals(0, b.receive(1, 300).size());
        assertEquals(1, portOf(pb).rxDropped());
        b.send(NetDriver.frame(A, B, 60));
        assertEquals(1, b.sent(1, 5000));
        assertEquals(1, portOf(pb).txDropped(), "a port that is down does not send");
        dev.adminUp(true);
        assertEquals(VirtioNet.S_LINK_UP, b.s.frontend().getConfig(VirtioNet.CONFIG_STATUS, 2)[0]);
        byte[] f = NetDriver.frame(BROADCAST, A, 70);
        a.send(f);
        assertArrayEquals(f, b.receive(1, 5000).get(0).frame());
    }
}
