package org.jvirtio.net;

import java.nio.file.Path;
import java.util.List;

import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.IoThreads;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Two ports whose queues share one I/O thread (as {@code bin/vhost-user net + net} runs them by
 * default): a frame goes from one port's transmit queue to the other's receive queue on that
 * thread, and the receive queue, and then the sender's mailbox, are woken as loop tasks
 * ({@code QueueCompletions.wakeHere}) instead of through their eventfds. Every frame arrives, in
 * order and intact, and every transmit chain comes back, both ways, many times over.
 */
class NetSharedThreadTest {
    static final long A = 0x5254_0000_000aL;
    static final long B = 0x5254_0000_000bL;

    @TempDir
    Path dir;

    /** What a driver asks for: every feature, or all but packed rings. */
    private static long wanted(boolean packed) {
        return packed ? ~0L : ~VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
    }

    /** {@code port}'s device at {@code socket}, served on {@code io}'s (first) thread. */
    private static VhostUserBackend serve(IoThreads io, SwitchPort port, long mac, Path socket) throws Exception {
        return VhostUserBackend.start(socket, new VirtioNetDevice(port, NetOptions.defaults(mac)), io.share(0, 0));
    }

    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void framesBetweenPortsOnOneThreadArriveAndTheirChainsComeBack(boolean packed) throws Exception {
        NetSwitch sw = NetSwitch.named("shared" + System.nanoTime());
        Path sa = dir.resolve("a.sock");
        Path sb = dir.resolve("b.sock");
        long wanted = wanted(packed);
        SwitchPort pa = sw.join("a");
        SwitchPort pb = sw.join("b");
        try (IoThreads io = new IoThreads(1, 0, 0);
             VhostUserBackend ba = serve(io, pa, A, sa);
             VhostUserBackend bb = serve(io, pb, B, sb);
             NetDriver a = new NetDriver(sa, wanted, 2048);
             NetDriver b = new NetDriver(sb, wanted, 2048)) {
            assertEquals(packed, a.has(VirtioFeatures.RING_PACKED));
            int burst = 16;
            for (int round = 0; round < 40; round++) {
                NetDriver from = round % 2 == 0 ? a : b;
                NetDriver to = round % 2 == 0 ? b : a;
                long src = round % 2 == 0 ? A : B;
                long dst = round % 2 == 0 ? B : A;
                to.post(burst);
                byte[][] frames = new byte[burst][];
                for (int i = 0; i < burst; i++) {
                    frames[i] = NetDriver.frame(dst, src, 60 + 90 * i + round);
                    frames[i][20] = (byte) i; // in the payload: which frame of the burst
                    from.send(frames[i]);
                }
                List<NetDriver.Received> got = to.receive(burst, 5000);
                assertEquals(burst, got.size(), "round " + round + ": frames received; " + pa.stats() + "; " + pb.stats());
                for (int i = 0; i < burst; i++) {
                    assertArrayEquals(frames[i], got.get(i).frame(), "round " + round + ", frame " + i);
                }
                assertEquals(burst, from.sent(burst, 5000), "round " + round + ": transmit chains back");
            }
            assertEquals(0, pa.txDropped() + pb.rxDropped() + pb.txDropped() + pa.rxDropped(), pa.stats() + "; " + pb.stats());
        }
    }

    /**
     * One receive queue fed at once by a port of its own thread (handed over without a lock or an
     * atomic instruction) and by a port on another thread (through the locked inbox): every frame
     * arrives intact, each sender's in order, and both senders' transmit chains come back.
     */
    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void aReceiveQueueFedFromItsOwnThreadAndAnotherAtOnceLosesNothing(boolean packed) throws Exception {
        NetSwitch sw = NetSwitch.named("mixed" + System.nanoTime());
        long c = 0x5254_0000_000cL;
        Path sa = dir.resolve("a.sock");
        Path sb = dir.resolve("b.sock");
        Path sc = dir.resolve("c.sock");
        long wanted = wanted(packed);
        SwitchPort pa = sw.join("a");
        SwitchPort pb = sw.join("b");
        SwitchPort pc = sw.join("c");
        try (IoThreads io = new IoThreads(1, 0, 0);
             IoThreads elsewhere = new IoThreads(1, 0, 0);
             VhostUserBackend ba = serve(io, pa, A, sa);
             VhostUserBackend bb = serve(io, pb, B, sb);
             VhostUserBackend bc = serve(elsewhere, pc, c, sc);
             NetDriver a = new NetDriver(sa, wanted, 2048);
             NetDriver b = new NetDriver(sb, wanted, 2048);
             NetDriver cd = new NetDriver(sc, wanted, 2048)) {
            // b's address learned first, so that what follows is unicast to b alone
            b.send(NetDriver.frame(A, B, 60));
            assertEquals(1, b.sent(1, 5000), "b's frame went out (flooded, dropped where no buffer waited)");
            int burst = 24;
            for (int round = 0; round < 30; round++) {
                b.post(2 * burst);
                byte[][] fromA = new byte[burst][];
                byte[][] fromC = new byte[burst][];
                for (int i = 0; i < burst; i++) {
                    fromA[i] = NetDriver.frame(B, A, 60 + 40 * i + round);
                    fromA[i][20] = (byte) i;
                    fromC[i] = NetDriver.frame(B, c, 61 + 40 * i + round);
                    fromC[i][20] = (byte) i;
                    a.send(fromA[i]);
                    cd.send(fromC[i]);
                }
                List<NetDriver.Received> got = b.receive(2 * burst, 5000);
                assertEquals(2 * burst, got.size(), "round " + round + ": frames received; " + pa.stats() + "; " + pb.stats() + "; " + pc.stats());
                int nextA = 0;
                int nextC = 0;
                for (NetDriver.Received r : got) {
                    long src = TxQueue.source(r.frame());
                    if (src == A) {
                        assertArrayEquals(fromA[nextA], r.frame(), "round " + round + ", a's frame " + nextA);
                        nextA++;
                    } else {
                        assertEquals(c, src, "round " + round + ": a frame from nowhere");
                        assertArrayEquals(fromC[nextC], r.frame(), "round " + round + ", c's frame " + nextC);
                        nextC++;
                    }
                }
                assertEquals(burst, a.sent(burst, 5000), "round " + round + ": a's transmit chains back");
                assertEquals(burst, cd.sent(burst, 5000), "round " + round + ": c's transmit chains back");
            }
            assertEquals(0, pa.txDropped() + pb.rxDropped() + pc.txDropped(), pa.stats() + "; " + pb.stats() + "; " + pc.stats());
        }
    }

    /**
     * The own-thread hand-over under abuse: a port floods broadcasts at a port of its thread whose
     * ring has no buffer (every frame is dropped and counted, every transmit chain comes back: none
     * is held), then its driver disappears with frames on their way, and a new driver on the same
     * socket and the other port go on exchanging frames.
     */
    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void aFloodFromAPortOfTheSameThreadIsDroppedNotHeldAndItsDriverMayVanish(boolean packed) throws Exception {
        NetSwitch sw = NetSwitch.named("flood" + System.nanoTime());
        Path sa = dir.resolve("a.sock");
        Path sb = dir.resolve("b.sock");
        long wanted = wanted(packed);
        SwitchPort pa = sw.join("a");
        SwitchPort pb = sw.join("b");
        try (IoThreads io = new IoThreads(1, 0, 0);
             VhostUserBackend ba = serve(io, pa, A, sa);
             VhostUserBackend bb = serve(io, pb, B, sb);
             NetDriver b = new NetDriver(sb, wanted, 2048)) {
            long broadcast = 0xffff_ffff_ffffL;
            try (NetDriver a = new NetDriver(sa, wanted, 2048)) {
                for (int round = 0; round < 8; round++) {
                    for (int i = 0; i < 64; i++) {
                        a.send(NetDriver.frame(broadcast, A, 60 + i));
                    }
                    assertEquals(64, a.sent(64, 5000), "round " + round + ": every chain back although b has no buffer; " + pb.stats());
                }
                assertEquals(8 * 64, pb.rxDropped(), pb.stats());
                // a burst on its way when the driver goes away
                for (int i = 0; i < 32; i++) {
                    a.send(NetDriver.frame(broadcast, A, 100));
                }
            }
            try (NetDriver a2 = new NetDriver(sa, wanted, 2048)) {
                for (int round = 0; round < 4; round++) {
                    b.post(16);
                    byte[][] frames = new byte[16][];
                    for (int i = 0; i < 16; i++) {
                        frames[i] = NetDriver.frame(B, A, 70 + 10 * i + round);
                        a2.send(frames[i]);
                    }
                    List<NetDriver.Received> got = b.receive(16, 5000);
                    assertEquals(16, got.size(), "round " + round + ": " + pa.stats() + "; " + pb.stats());
                    for (int i = 0; i < 16; i++) {
                        assertArrayEquals(frames[i], got.get(i).frame(), "round " + round + ", frame " + i);
                    }
                    assertEquals(16, a2.sent(16, 5000));
                }
            }
        }
    }
}
