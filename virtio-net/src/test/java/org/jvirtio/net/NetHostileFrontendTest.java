package org.jvirtio.net;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.vhostuser.HostileFrontendFuzz;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The hostile front-end (virtio-transport-vhostuser's {@link HostileFrontendFuzz}) against a port
 * of a switch while two well-behaved ports of the same switch flood it with broadcasts: the
 * fuzzed port's rings start, stop, reset and break at random with frames arriving from another
 * thread (or, sharing its thread, placed on the sender's call stack) the whole time. The other
 * ports' chains always come back, and they go on forwarding to each other.
 */
class NetHostileFrontendTest {
    static final long B = 0x5254_0000_000bL;
    static final long C = 0x5254_0000_000cL;

    @TempDir
    Path dir;

    /**
     * @param sharedThread the fuzzed port and the flooding port b served on one I/O thread (the
     *                     default of {@code bin/vhost-user net + net}): b's frames are placed into
     *                     the fuzzed port's rings on b's call stack ({@code RxQueue.placeNow}) while
     *                     those rings start, stop, reset and break; else each port on threads of
     *                     its own (frames handed over through the inbox)
     */
    @ParameterizedTest(name = "sharedThread={0}")
    @ValueSource(booleans = {false, true})
    void randomSessionsOnOnePortNeverStopTheOthers(boolean sharedThread) throws Exception {
        String sw = "fuzz" + System.nanoTime();
        SwitchPort fuzzed = NetSwitch.named(sw).join("fuzzed");
        VirtioNetDevice device = new VirtioNetDevice(fuzzed, NetOptions.defaults(0x5254_0000_00faL));
        long noPacked = ~(1L << VirtioFeatures.RING_PACKED);
        IoThreads io = sharedThread ? new IoThreads(1, 0, 0) : null;
        QueueHost fuzzHost = sharedThread ? io.share(0, 0) : QueueHost.THREAD_PER_QUEUE;
        try (AutoCloseable threads = io;
             AutoCloseable pb = sharedThread
                     ? VhostUserBackend.start(dir.resolve("b.sock"), new VirtioNetDevice(NetSwitch.named(sw).join("b"), NetOptions.defaults(B)),
                             io.share(0, 0))
                     : VhostUserRunner.start(VhostUserRunner.devices(), "net", "--socket", dir.resolve("b.sock").toString(), "--switch", sw);
             var pc = VhostUserRunner.start(VhostUserRunner.devices(), "net", "--socket", dir.resolve("c.sock").toString(), "--switch", sw);
             NetDriver b = new NetDriver(dir.resolve("b.sock"), noPacked, 2048);
             NetDriver c = new NetDriver(dir.resolve("c.sock"), noPacked, 2048)) {
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong sent = new AtomicLong();
            AtomicLong lost = new AtomicLong();
            AtomicLong received = new AtomicLong();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread sender = new Thread(() -> {
                try {
                    while (!stop.get()) {
                        b.send(NetDriver.frame(0xffff_ffff_ffffL, B, 200));
                        if (b.sent(1, 5000) == 1) {
                            sent.incrementAndGet();
                        } else {
                            lost.incrementAndGet(); // held somewhere: the switch must never do that
                            return;
                        }
                    }
                } catch (Throwable t) {
                    failure.set(t);
                }
            });
            Thread receiver = new Thread(() -> {
                try {
                    c.post(NetDriver.SIZE);
                    while (!stop.get()) {
                        int n = c.receive(NetDriver.SIZE / 2, 50).size();
                        received.addAndGet(n);
                        if (n > 0) {
                            c.post(n);
                        }
                    }
                } catch (Throwable t) {
                    failure.set(t);
                }
            });
            sender.start();
            receiver.start();
            try {
                HostileFrontendFuzz.run("net", dir, device, fuzzHost, new HostileFrontendFuzz.Served() {
                    @Override
                    public String describe() {
                        return fuzzed.stats() + "; the flood: " + sent.get() + " sent, " + received.get() + " received";
                    }

                    @Override
                    public void check(int sessions) {
                        assertTrue(fuzzed.rxFrames() + fuzzed.rxDropped() > sessions, "frames reached the fuzzed port: " + describe());
                        assertTrue(fuzzed.txFrames() + fuzzed.txDropped() > sessions / 10, "the fuzzed port sent: " + describe());
                    }
                });
            } finally {
                stop.set(true);
                sender.join(10_000);
                receiver.join(10_000);
            }
            assertNull(failure.get());
            assertEquals(0, lost.get(), "every chain of the flooding port came back");
            assertTrue(sent.get() > 100, "sent " + sent.get());
            assertTrue(received.get() > 100, "the third port received " + received.get());
            // The two good ports still forward to each other, unicast now that both are learned.
            b.post(4);
            c.send(NetDriver.frame(B, C, 300));
            assertEquals(1, c.sent(1, 5000));
            List<NetDriver.Received> got = b.receive(1, 5000);
            assertEquals(1, got.size());
            assertArrayEquals(NetDriver.frame(B, C, 300), got.get(0).frame());
        } finally {
            NetSwitch.named(sw).leave(fuzzed);
        }
    }
}
