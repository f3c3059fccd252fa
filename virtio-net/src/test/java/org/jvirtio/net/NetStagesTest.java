package org.jvirtio.net;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.QueueHost;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/** Forwarding stages: anti-spoofing and the rate limit from the command line, a stage of one's own bound with Guice, bad flags refused. */
class NetStagesTest {
    static final long A = 0x5254_0000_000aL;
    static final long B = 0x5254_0000_000bL;
    static final long C = 0x5254_0000_000cL;
    static final long NO_PACKED = ~(1L << VirtioFeatures.RING_PACKED);

    @TempDir
    Path dir;
    final String sw = "stages" + System.nanoTime();
    final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void tearDown() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    VhostUserRunner.Running<?> port(String name, String... extra) throws Exception {
        List<String> args = new ArrayList<>(List.of("net", "--socket", dir.resolve(name).toString(), "--switch", sw));
        args.addAll(List.of(extra));
        var r = VhostUserRunner.start(VhostUserRunner.devices(), args.toArray(String[]::new));
        open.add(r);
        return r;
    }

    NetDriver driver(String name) throws Exception {
        NetDriver d = new NetDriver(dir.resolve(name), NO_PACKED, 2048);
        open.add(d);
        return d;
    }

    static byte[] ipv4(long dst, long src, int srcIp, int type) {
        byte[] f = NetDriver.frame(dst, src, 60);
        f[12] = 0x08;
        f[13] = (byte) type;
        int at = type == 0x06 ? 14 + 14 : 14 + 12;
        f[at] = (byte) (srcIp >>> 24);
        f[at + 1] = (byte) (srcIp >>> 16);
        f[at + 2] = (byte) (srcIp >>> 8);
        f[at + 3] = (byte) srcIp;
        return f;
    }

    @Test
    void antiSpoofingDropsFramesFromAnotherMacOrIpv4Address() throws Exception {
        var pa = port("a.sock", "--mac", "52:54:00:00:00:0a", "--anti-spoof", "--allow-ip", "10.0.0.1,10.0.0.5");
        port("b.sock");
        NetDriver a = driver("a.sock");
        NetDriver b = driver("b.sock");
        b.post(16);
        int ok1 = AntiSpoofing.parseIpv4("10.0.0.1");
        int ok5 = AntiSpoofing.parseIpv4("10.0.0.5");
        int bad = AntiSpoofing.parseIpv4("10.0.0.9");
        a.send(ipv4(B, C, ok1, 0x00));          // another MAC
        a.send(ipv4(B, A, bad, 0x00));          // IPv4 from an address not given
        a.send(ipv4(B, A, bad, 0x06));          // ARP claiming an address not given
        assertEquals(3, a.sent(3, 5000));
        assertEquals(3, ((VirtioNetDevice) pa.device()).port().txDropped());
        assertEquals(0, b.receive(1, 300).size());
        byte[] ipv6 = NetDriver.frame(B, A, 80);
        ipv6[12] = (byte) 0x86;
        ipv6[13] = (byte) 0xdd;
        List<byte[]> good = List.of(ipv4(B, A, ok1, 0x00), ipv4(B, A, ok5, 0x06), ipv4(B, A, 0, 0x00), ipv6);
        for (byte[] f : good) {
            a.send(f);
        }
        List<NetDriver.Received> got = b.receive(4, 5000);
        assertEquals(4, got.size());
        for (int i = 0; i < 4; i++) {
            assertArrayEquals(good.get(i), got.get(i).frame());
        }
    }

    /**
     * SEND_RARP is the front-end's word: a group address or none is refused, and with
     * --anti-spoof an address that is not the port's is dropped as the guest's own frame would
     * be (before, the announcement went around the stages: a front-end could move another guest's
     * address to its port); the port's own address is announced; a malformed SEND_RARP closes the
     * connection with its reason.
     */
    @Test
    void sendRarpCannotAnnounceAnotherGuestsOrAGroupAddress() throws Exception {
        var pa = port("a.sock", "--mac", "52:54:00:00:00:0a", "--anti-spoof");
        var pb = port("b.sock");
        NetDriver a = driver("a.sock");
        NetDriver b = driver("b.sock");
        a.post(8);
        b.post(8);
        b.send(NetDriver.frame(0xffff_ffff_ffffL, B, 60)); // B learned on b's port
        assertEquals(1, a.receive(1, 5000).size());
        SwitchPort bPort = ((VirtioNetDevice) pb.device()).port();
        assertSame(bPort, bPort.owner().portOf(B));
        a.s.frontend().sendRarp(B);                   // another guest's address
        a.s.frontend().sendRarp(0xffff_ffff_ffffL);   // broadcast
        a.s.frontend().sendRarp(0x0100_5e00_0001L);   // multicast
        a.s.frontend().sendRarp(0);
        assertTrue(a.s.frontend().getQueueNum() > 0, "the connection stays up");
        assertEquals(0, b.receive(1, 500).size(), "nothing announced");
        assertSame(bPort, bPort.owner().portOf(B), "B stays on b's port");
        a.s.frontend().sendRarp(A);                   // the port's own
        byte[] rarp = b.receive(1, 5000).get(0).frame();
        assertEquals(0x8035, ((rarp[12] & 0xff) << 8) | (rarp[13] & 0xff));
        assertEquals(A, TxQueue.source(rarp));
        SwitchPort aPort = ((VirtioNetDevice) pa.device()).port();
        var gone = ((org.jvirtio.transport.vhostuser.VhostUserBackend) pa.transport()).nextDisconnect();
        a.s.frontend().sendRaw(org.jvirtio.transport.vhostuser.VhostUserMessage.encode(19 /* SEND_RARP */, 1, new byte[6]));
        String why = gone.get(10, java.util.concurrent.TimeUnit.SECONDS);
        assertTrue(why.contains("SEND_RARP") && why.contains("6 bytes"), why);
        assertSame(aPort, aPort.owner().portOf(A));
    }

    @Test
    void theRateLimitDropsWhatGoesBeyondItsBurst() throws Exception {
        var pa = port("a.sock", "--rate-limit", "20");
        port("b.sock");
        NetDriver a = driver("a.sock");
        NetDriver b = driver("b.sock");
        b.post(NetDriver.SIZE);
        for (int i = 0; i < 50; i++) {
            a.send(NetDriver.frame(B, A, 60));
        }
        assertEquals(50, a.sent(50, 5000), "every chain back, dropped or not");
        int got = b.receive(50, 1000).size();
        assertTrue(got >= 20 && got <= 25, "a second's burst of 20 (and what refilled meanwhile) passed: " + got);
        assertEquals(50 - got, ((VirtioNetDevice) pa.device()).port().txDropped());
    }

    /** A stage of one's own: frames to a virtual address go to C instead, with C's address in the copy. */
    @Test
    void aStageOfOnesOwnRewritesTheDestination() throws Exception {
        long virtualMac = 0x0200_0000_0001L;
        SwitchPort pa = NetSwitch.named(sw).join("own");
        FrameStage redirect = f -> {
            if (f.destination() == virtualMac) {
                f.rewriteDestination(C);
            }
            return true;
        };
        VirtioNetDevice device = com.google.inject.Guice.createInjector(new NetModule(pa, NetOptions.defaults(A)),
                binder -> NetModule.stages(binder).addBinding().toInstance(redirect)).getInstance(VirtioNetDevice.class);
        QueueHost host = QueueHost.THREAD_PER_QUEUE;
        try (VhostUserBackend backend = VhostUserBackend.start(dir.resolve("a.sock"), device, host)) {
            port("b.sock");
            port("c.sock");
            NetDriver a = driver("a.sock");
            NetDriver b = driver("b.sock");
            NetDriver c = driver("c.sock");
            b.post(4);
            c.post(4);
            c.send(NetDriver.frame(0xffff_ffff_ffffL, C, 60)); // C is learned
            assertEquals(1, c.sent(1, 5000));
            assertEquals(1, b.receive(1, 5000).size());
            byte[] f = NetDriver.frame(virtualMac, A, 100);
            a.send(f);
            List<NetDriver.Received> got = c.receive(1, 5000);
            byte[] expected = f.clone();
            for (int i = 0; i < 6; i++) {
                expected[i] = (byte) (C >>> (8 * (5 - i)));
            }
            assertArrayEquals(expected, got.get(0).frame());
            assertEquals(0, b.receive(1, 300).size(), "unicast to C alone");
        } finally {
            NetSwitch.named(sw).leave(pa);
        }
    }

    /** A switch-wide stage bound by two ports' compositions is added once and sees every port's frames once. */
    @Test
    void aSwitchWideStageRunsOnceForEveryPortsFrames() throws Exception {
        java.util.concurrent.atomic.AtomicInteger seen = new java.util.concurrent.atomic.AtomicInteger();
        FrameStage noIpv6 = f -> {
            seen.incrementAndGet();
            return f.etherType() != 0x86dd;
        };
        SwitchPort pa = NetSwitch.named(sw).join("a");
        SwitchPort pb = NetSwitch.named(sw).join("b");
        VirtioNetDevice da = com.google.inject.Guice.createInjector(new NetModule(pa, NetOptions.defaults(A)),
                b -> NetModule.switchStages(b).addBinding().toInstance(noIpv6)).getInstance(VirtioNetDevice.class);
        VirtioNetDevice db = com.google.inject.Guice.createInjector(new NetModule(pb, NetOptions.defaults(B)),
                b -> NetModule.switchStages(b).addBinding().toInstance(noIpv6)).getInstance(VirtioNetDevice.class);
        try (VhostUserBackend ba = VhostUserBackend.start(dir.resolve("a.sock"), da, QueueHost.THREAD_PER_QUEUE);
             VhostUserBackend bb = VhostUserBackend.start(dir.resolve("b.sock"), db, QueueHost.THREAD_PER_QUEUE)) {
            port("c.sock"); // a port composed without it is governed by it as well
            NetDriver a = driver("a.sock");
            NetDriver b = driver("b.sock");
            NetDriver c = driver("c.sock");
            a.post(4);
            b.post(4);
            c.post(4);
            byte[] v4 = NetDriver.frame(0xffff_ffff_ffffL, C, 60);
            byte[] v6 = v4.clone();
            v6[12] = (byte) 0x86;
            v6[13] = (byte) 0xdd;
            c.send(v6);
            c.send(v4);
            assertEquals(2, c.sent(2, 5000));
            assertArrayEquals(v4, a.receive(1, 5000).get(0).frame(), "IPv4 passes, the IPv6 frame was dropped");
            assertArrayEquals(v4, b.receive(1, 5000).get(0).frame());
            assertEquals(0, a.receive(1, 200).size());
            assertEquals(2, seen.get(), "once per frame, though two compositions bound it");
            assertEquals(1, NetSwitch.named(sw).stages().length);
        } finally {
            NetSwitch.named(sw).leave(pa);
            NetSwitch.named(sw).leave(pb);
        }
    }

    @Test
    void badFlagsAreRefusedWithOneLineAndNothingListens() throws Exception {
        String[][] bad = {
            {"--allow-ip", "10.0.0.1"},
            {"--anti-spoof"},
            {"--mac", "52:54:00:00:00:0a", "--anti-spoof", "--allow-ip", "10.0.0.300"},
            {"--mac", "52:54:00:00:00"},
            {"--mac", "01:00:00:00:00:01"},
            {"--mtu", "10"},
            {"--queue-pairs", "0"},
            {"--offloads", "maybe"},
            {"--mrg-rxbuf", "yes"},
            {"--rate-limit", "-1"},
            {"--switch", ""},
            {"--tap", "no/slash"},
            {"--tap", "a-name-longer-than-15"},
        };
        for (String[] flags : bad) {
            List<String> args = new ArrayList<>(List.of("net", "--socket", dir.resolve("x.sock").toString()));
            args.addAll(List.of(flags));
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            assertEquals(2, VhostUserRunner.run(VhostUserRunner.devices(), args.toArray(String[]::new), new PrintStream(new ByteArrayOutputStream()),
                    new PrintStream(err, true)), String.join(" ", flags));
            assertEquals(1, err.toString().strip().lines().count(), err.toString());
            assertFalse(Files.exists(dir.resolve("x.sock")));
        }
    }
}
