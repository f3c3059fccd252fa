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

    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void framesBetweenPortsOnOneThreadArriveAndTheirChainsComeBack(boolean packed) throws Exception {
        NetSwitch sw = NetSwitch.named("shared" + System.nanoTime());
        Path sa = dir.resolve("a.sock");
        Path sb = dir.resolve("b.sock");
        long wanted = packed ? ~0L : ~VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
        SwitchPort pa = sw.join("a");
        SwitchPort pb = sw.join("b");
        try (IoThreads io = new IoThreads(1, 0, 0);
             VhostUserBackend ba = VhostUserBackend.start(sa, new VirtioNetDevice(pa, NetOptions.defaults(A)), io.share(0, 0));
             VhostUserBackend bb = VhostUserBackend.start(sb, new VirtioNetDevice(pb, NetOptions.defaults(B)), io.share(0, 0));
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
}
