package org.jvirtio.net;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.QueueEngine;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.testkit.RecordingContext;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A frame sent between two ports of one thread is placed into the receiver's ring at once, from
 * the sender's transmit queue ({@code RxQueue.placeNow}, through the receive queue's engine's
 * {@code serveOneNow}): the sender's chain comes back within the same serve, and what the
 * receive queue would otherwise have done later (merged buffers, a chain that holds no frame, no
 * chain at all) still happens, in the sender's order. Four engines driven by hand on the test's
 * thread, as an I/O thread runs them: a queue woken here ({@code wakeHere}) runs when the test
 * says, so the tests can put frames between a placement and the receiver's next turn; a kick is
 * served as soon as the driver asks for one. The receive ring's look at how many buffers it has
 * can run a test's step right after it, to put the driver between that look and what follows.
 */
@org.junit.jupiter.params.ParameterizedClass(name = "packed={0}")
@org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
class NetPlaceNowTest {
    static final long A = 0x5254_0000_000aL;
    static final long B = 0x5254_0000_000bL;
    static final int SIZE = 64;

    @org.junit.jupiter.params.Parameter
    boolean packed;

    GuestMemory mem;
    /** Queues woken on this thread, in order, each once. */
    final ArrayDeque<QueueEngine> tasks = new ArrayDeque<>();
    final List<QueueEngine> pending = new ArrayList<>();
    Port a;
    Port b;
    /** Where the next buffer or frame goes in guest memory. */
    long next = 0x10_0000;

    /** A port: its device, its engines, and the driver's side of its two rings. */
    final class Port {
        final SwitchPort port;
        final VirtioNetDevice device;
        final RecordingContext context;
        final QueueDriver rxd;
        final QueueDriver txd;
        final QueueEngine rx;
        final QueueEngine tx;

        Port(NetSwitch sw, String name, long mac, long ringBase) throws Exception {
            port = sw.join(name);
            device = new VirtioNetDevice(port, NetOptions.defaults(mac));
            long features = packed ? FeatureNegotiation.offeredWithPacked(device)
                    : FeatureNegotiation.offered(device) & ~VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
            assertEquals(packed, (features & VirtioFeatures.bit(VirtioFeatures.RING_PACKED)) != 0);
            context = new RecordingContext(features);
            device.activate(context);
            rxd = QueueDriver.at(mem, ringBase, SIZE, features, 0, 0);
            txd = QueueDriver.at(mem, ringBase + 0x4000, SIZE, features, 0, 0);
            rx = engine(0, rxd, features);
            tx = engine(1, txd, features);
        }

        private QueueEngine engine(int index, QueueDriver d, long features) throws Exception {
            RingQueue ring = RingQueue.create(index, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS, features);
            ring.activate(mem, SIZE, d.descAddr(), d.availAddr(), d.usedAddr(), features);
            ring.setViolationListener((q, v) -> context.needsReset(index, v.toString())); // as the transports do
            QueueBinding binding = new QueueBinding(index, index == 0 ? new Hooked(ring) : ring, null, Interrupt.NONE);
            QueueEngine e = new QueueEngine(binding, device.openQueue(binding));
            e.wakeHere(() -> {
                if (!pending.contains(e)) {
                    pending.add(e);
                    tasks.addLast(e);
                }
                return true;
            });
            e.open();
            return e;
        }

        /** Offers {@code n} receive buffers of {@code len} bytes (the kick, if the queue wants one, served at once); returns their addresses. */
        long[] post(int n, int len) {
            long[] at = new long[n];
            for (int i = 0; i < n; i++) {
                at[i] = next;
                next += 4096;
                assertTrue(rxd.add(new long[] {at[i]}, new int[] {len}, 1, 0, at[i]) >= 0);
            }
            if (rxd.publish()) {
                while (rx.serve()) {
                    // the kick: the queue finds no frame, puts the chain back and rests
                }
            }
            return at;
        }

        /** Offers {@code frame} (a zeroed virtio header before it) for transmission. */
        void send(byte[] frame) {
            long at = next;
            next += 4096;
            mem.write(at, MemorySegment.ofArray(new byte[VirtioNet.HDR_SIZE]));
            mem.write(at + VirtioNet.HDR_SIZE, MemorySegment.ofArray(frame));
            assertTrue(txd.add(new long[] {at}, new int[] {VirtioNet.HDR_SIZE + frame.length}, 1, 1, at) >= 0);
            txd.publish();
        }

        /** Transmit chains the driver got back since the last call. */
        int sentBack() {
            return txd.pollUsed((head, token, length) -> { });
        }

        /** Receive buffers returned since the last call: address (token) and length, in the order used. */
        List<long[]> received() {
            List<long[]> got = new ArrayList<>();
            rxd.pollUsed((head, token, length) -> got.add(new long[] {token, length}));
            return got;
        }

        /** Run once, by the next look at how many receive buffers the ring has, after the look (the driver acting right after it). */
        Runnable afterAvailable;

        /** The receive ring as the device sees it, with {@link #afterAvailable} run by its look at how many buffers it has. */
        final class Hooked implements org.jvirtio.api.Virtqueue {
            final org.jvirtio.api.Virtqueue q;

            Hooked(org.jvirtio.api.Virtqueue q) {
                this.q = q;
            }

            @Override
            public int available() {
                int n = q.available();
                Runnable r = afterAvailable;
                afterAvailable = null;
                if (r != null) {
                    r.run();
                }
                return n;
            }

            // ---- the rest as the ring does it ----
            @Override public int index() { return q.index(); }
            @Override public int size() { return q.size(); }
            @Override public org.jvirtio.api.DescriptorChain pop() { return q.pop(); }
            @Override public void unpop(org.jvirtio.api.DescriptorChain c) { q.unpop(c); }
            @Override public void addUsed(org.jvirtio.api.DescriptorChain c, int len) { q.addUsed(c, len); }
            @Override public void addUsedTogether(org.jvirtio.api.DescriptorChain[] c, int[] len, int n) { q.addUsedTogether(c, len, n); }
            @Override public boolean publishUsed() { return q.publishUsed(); }
            @Override public boolean enableNotifications() { return q.enableNotifications(); }
            @Override public void disableNotifications() { q.disableNotifications(); }
            @Override public boolean isBroken() { return q.isBroken(); }
            @Override public int inFlight() { return q.inFlight(); }
        }

        /** Set by a test that breaks this port's ring on purpose. */
        boolean broken;

        void close() {
            assertEquals(0, rx.inFlight() + tx.inFlight(), "nothing left in flight");
            rx.close();
            tx.close();
            device.reset();
            assertEquals(broken, !context.resets.isEmpty(), "rings broken: " + context.resets);
        }
    }

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(8 << 20);
        NetSwitch sw = NetSwitch.named("now" + System.nanoTime());
        a = new Port(sw, "a", A, 0x1000);
        b = new Port(sw, "b", B, 0x9000);
    }

    @AfterEach
    void tearDown() {
        a.close();
        b.close();
        mem.release();
    }

    /** Runs what was woken on this thread until nothing is (as the I/O thread does before it sleeps). */
    void runTasks() {
        QueueEngine e;
        while ((e = tasks.pollFirst()) != null) {
            pending.remove(e);
            while (e.reapCompletions()) {
                // work left: served again, as the host does
            }
        }
    }

    /** The frame received into the buffer at {@code at}, {@code len} bytes with its header. */
    byte[] frameAt(long at, long len) {
        byte[] f = new byte[(int) len - VirtioNet.HDR_SIZE];
        mem.read(at + VirtioNet.HDR_SIZE, MemorySegment.ofArray(f));
        return f;
    }

    /** Asserts that {@code used} (a buffer returned: its address and length) is the buffer at {@code buffer} holding {@code frame}. */
    void assertReceived(long[] used, long buffer, byte[] frame, String what) {
        assertEquals(buffer, used[0], what + ": the buffer, in the driver's order");
        assertArrayEquals(frame, frameAt(used[0], used[1]), what);
    }

    /** Serves a's transmit queue until it has nothing left (as its kick would). */
    void serveA() {
        while (a.tx.serve()) {
            // the serve budget ran out on a slow machine: again
        }
    }

    @Test
    void framesToABufferWaitingOnTheSameThreadArriveInOrderAndTheSendersChainsComeBackInTheSameServe() {
        long[] bufs = b.post(20, 2048);
        byte[][] frames = new byte[20][];
        for (int i = 0; i < 20; i++) {
            frames[i] = NetDriver.frame(B, A, 50 + 37 * i);
            a.send(frames[i]);
        }
        serveA();
        assertEquals(20, a.sentBack(), "every transmit chain back before any other queue's turn: nothing held the frames");
        runTasks(); // b's receive queue publishes in its turn
        List<long[]> got = b.received();
        assertEquals(20, got.size(), b.port.stats());
        for (int i = 0; i < 20; i++) {
            assertReceived(got.get(i), bufs[i], frames[i], "frame " + i);
        }
        assertEquals(20, b.port.rxFrames());
        assertEquals(0, a.port.txDropped() + b.port.rxDropped());
    }

    /**
     * A frame that finds the receiver's ring empty waits in its inbox; a later frame of the same
     * sender that finds a buffer must not pass it: it waits behind it (and, the ring empty again,
     * is the one dropped).
     */
    @Test
    void aFrameNeverPassesAFrameOfItsSenderThatWaits() {
        long[] first = b.post(1, 2048);
        byte[] f1 = NetDriver.frame(B, A, 60);
        byte[] f2 = NetDriver.frame(B, A, 61);
        byte[] f3 = NetDriver.frame(B, A, 62);
        a.send(f1);
        a.send(f2);
        serveA(); // f1 placed at once; f2 finds no buffer and waits for b's turn
        long[] second = b.post(1, 2048);
        a.send(f3);
        serveA(); // a buffer now, but f2 waits before f3
        runTasks();
        List<long[]> got = b.received();
        assertEquals(2, got.size(), b.port.stats());
        assertReceived(got.get(0), first[0], f1, "f1");
        assertReceived(got.get(1), second[0], f2, "f2 before f3: the sender's order");
        assertEquals(1, b.port.rxDropped(), "f3, which found no buffer after f2 took the second");
        runTasks();
        assertEquals(3, a.sentBack(), "every transmit chain back");
    }

    /** A frame over several small buffers (MRG_RXBUF), placed at once: the buffers returned together, num_buffers in the first. */
    @Test
    void aFrameOverMergedBuffersIsPlacedAtOnceToo() {
        long[] bufs = b.post(6, 64);
        byte[] f = NetDriver.frame(B, A, 200); // 214 bytes + 12 of header: four buffers of 64
        a.send(f);
        serveA();
        assertEquals(1, a.sentBack());
        runTasks();
        List<long[]> got = b.received();
        assertEquals(4, got.size(), b.port.stats());
        byte[] whole = new byte[f.length];
        int at = 0;
        for (int i = 0; i < 4; i++) {
            assertEquals(bufs[i], got.get(i)[0]);
            int skip = i == 0 ? VirtioNet.HDR_SIZE : 0;
            int n = (int) got.get(i)[1] - skip;
            byte[] part = new byte[n];
            mem.read(bufs[i] + skip, MemorySegment.ofArray(part));
            System.arraycopy(part, 0, whole, at, n);
            at += n;
        }
        assertEquals(f.length, at);
        assertArrayEquals(f, whole);
        assertEquals(4, mem.readU16(bufs[0] + 10), "num_buffers");
    }

    /**
     * A receive chain that can hold no frame is answered empty as the receive queue's own turn
     * answers it; the frame is not lost with it: it waits, and goes into the next buffer.
     */
    @Test
    void aBufferThatHoldsNoFrameIsAnsweredEmptyAndTheFrameTakesTheNext() {
        long[] warm = b.post(1, 2048); // its kick: b's queue finds no frame and rests (no kick wanted after)
        byte[] f0 = NetDriver.frame(B, A, 59);
        a.send(f0);
        serveA(); // placed at once
        long[] tiny = b.post(1, 8);
        long[] good = b.post(1, 2048);
        byte[] f = NetDriver.frame(B, A, 60);
        a.send(f);
        serveA(); // meets the tiny buffer first
        runTasks();
        List<long[]> got = b.received();
        assertEquals(3, got.size(), b.port.stats());
        assertReceived(got.get(0), warm[0], f0, "f0");
        assertEquals(tiny[0], got.get(1)[0]);
        assertEquals(0, got.get(1)[1], "the tiny buffer answered empty");
        assertReceived(got.get(2), good[0], f, "f, in the buffer after the tiny one");
        assertEquals(0, b.port.rxDropped());
        assertEquals(2, a.sentBack());
    }

    /**
     * A receiver whose driver offers a buffer outside guest memory: its ring breaks (it needs a
     * reset) while the sender's queue is placing a frame into it, on the sender's call stack; the
     * sender loses nothing but that frame (dropped, counted), its chains come back, and its own
     * rings stay whole.
     */
    @Test
    void aHostileReceiverBreaksOnlyItsOwnRingWhenAFrameIsPlacedIntoIt() {
        b.broken = true;
        long[] warm = b.post(1, 2048);
        a.send(NetDriver.frame(B, A, 60));
        serveA();
        runTasks();
        assertEquals(1, a.sentBack());
        assertEquals(warm[0], b.received().get(0)[0], "the first frame went in");
        assertTrue(b.rxd.add(new long[] {1L << 40}, new int[] {2048}, 1, 0, 99) >= 0, "a buffer far outside guest memory");
        b.rxd.publish();
        for (int i = 0; i < 5; i++) {
            a.send(NetDriver.frame(B, A, 61 + i));
        }
        serveA();
        runTasks();
        assertFalse(b.context.resets.isEmpty(), "the receiver's ring broke");
        assertEquals(5, a.sentBack(), "every transmit chain back");
        assertTrue(a.context.resets.isEmpty(), "the sender's rings are whole: " + a.context.resets);
        assertEquals(5, b.port.rxDropped(), b.port.stats());
    }

    /**
     * The receive queue drops what waits when its ring has no buffer; a frame sent after the
     * driver posted buffers must not be among them, even when the buffers came while the queue
     * was between its look at the ring and the frames (CI caught this across two threads: the
     * receiver's thread preempted there while the test posted buffers and sent one more frame).
     */
    @Test
    void aFrameSentAfterBuffersCameIsNotDroppedByAQueueThatLookedAtTheRingJustBefore() {
        byte[] first = NetDriver.frame(B, A, 80);
        a.send(first);
        serveA(); // b's ring is empty: the frame waits in b's inbox, b woken here
        assertEquals(0, a.sentBack());
        long[] bufs = new long[2];
        byte[] second = NetDriver.frame(B, A, 90);
        boolean[] kick = new boolean[1];
        b.afterAvailable = () -> {
            // b looked (no buffer) and is about to drop what waits: the driver posts two buffers
            // now, and only then a sends one more frame
            for (int i = 0; i < 2; i++) {
                bufs[i] = next;
                next += 4096;
                assertTrue(b.rxd.add(new long[] {bufs[i]}, new int[] {2048}, 1, 0, bufs[i]) >= 0);
            }
            kick[0] = b.rxd.publish();
            a.send(second);
            serveA();
        };
        runTasks(); // b's turn: it looks, finds the buffers after all
        assertNull(b.afterAvailable, "the hook ran");
        assertTrue(kick[0], "b's driver asked for a kick");
        while (b.rx.serve()) {
            // the kick
        }
        runTasks();
        List<long[]> got = b.received();
        assertEquals(2, got.size(), "both frames placed, none dropped in front of the buffers");
        assertReceived(got.get(0), bufs[0], first, "the frame that waited");
        assertReceived(got.get(1), bufs[1], second, "the frame sent after the buffers came");
        assertEquals(0, b.port.rxDropped());
        assertEquals(2, a.sentBack());
    }

    /**
     * A frame that found buffers after all waits for them; when they turn out to hold no frame
     * (answered empty), it is dropped at the end of that drain like any frame without a buffer,
     * never held against its sender.
     */
    @Test
    void aFrameWhoseLateBuffersHoldNoFrameIsDroppedNotHeld() {
        a.send(NetDriver.frame(B, A, 80));
        serveA(); // waits in b's inbox
        long tiny = next;
        next += 4096;
        boolean[] kick = new boolean[1];
        b.afterAvailable = () -> {
            assertTrue(b.rxd.add(new long[] {tiny}, new int[] {8}, 1, 0, tiny) >= 0); // too small for any frame
            kick[0] = b.rxd.publish();
        };
        runTasks();
        assertEquals(0, b.port.rxDropped(), "the frame saw a buffer: it waits");
        assertTrue(kick[0]);
        while (b.rx.serve()) {
            // the kick
        }
        runTasks();
        List<long[]> got = b.received();
        assertEquals(1, got.size());
        assertEquals(tiny, got.get(0)[0]);
        assertEquals(0, got.get(0)[1], "the buffer answered empty");
        assertEquals(1, b.port.rxDropped(), "then the frame dropped: no buffer left");
        assertEquals(1, a.sentBack(), "and the sender's chain back");
    }
}
