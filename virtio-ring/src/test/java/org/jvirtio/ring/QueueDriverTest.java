package org.jvirtio.ring;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Random;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.Parameter;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Either layout's driver half against its device half, one thread, both over one memfd mapping:
 * the same test code for split and packed rings ({@link QueueDriver#at} and
 * {@link RingQueue#create} pick the layout from the features).
 */
@ParameterizedClass(name = "packed={0}")
@ValueSource(booleans = {false, true})
class QueueDriverTest {
    private static final long RING = 0x1000;
    private static final long INDIRECT = 0x10000;
    private static final long DATA = 0x40000;
    private static final int SIZE = 16;

    @Parameter
    boolean packed;
    private GuestMemory memory;

    @BeforeEach
    void setUp() throws Exception {
        memory = TestMemory.memfd(1 << 20);
    }

    @AfterEach
    void tearDown() {
        memory.release();
    }

    private long features(boolean eventIdx) {
        return VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.INDIRECT_DESC)
                | (eventIdx ? VirtioFeatures.bit(VirtioFeatures.EVENT_IDX) : 0)
                | (packed ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0);
    }

    private RingQueue device(QueueDriver d, long features) throws Exception {
        RingQueue q = RingQueue.create(0, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS, features);
        q.activate(memory, d.size(), d.descAddr(), d.availAddr(), d.usedAddr(), features);
        return q;
    }

    @Test
    void theLayoutIsTheOneTheFeaturesSay() throws Exception {
        long feat = features(true);
        QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, -1, 0);
        RingQueue q = device(d, feat);
        assertEquals(packed, d.packed());
        assertEquals(packed, q.packed());
        assertEquals(packed, q instanceof PackedQueue);
    }

    /**
     * Seventy thousand requests of one, two or three descriptors or an indirect table, completed
     * out of order: every index and wrap counter goes round many times, every descriptor comes
     * back, every request is seen once with its data.
     */
    @Test
    void seventyThousandRequestsOutOfOrderWrapEverythingAndFreeEveryDescriptor() throws Exception {
        long feat = features(true);
        QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, INDIRECT, 4);
        RingQueue q = device(d, feat);
        Random rnd = new Random(42);
        long[] addrs = new long[3];
        int[] lens = {8, 8, 1};
        boolean[] seen = new boolean[70_000];
        int[] count = {0};
        long next = 0;
        Deque<DescriptorChain> held = new ArrayDeque<>();
        while (next < seen.length) {
            int batch = 1 + rnd.nextInt(5);
            for (int i = 0; i < batch && next < seen.length; i++) {
                long base = DATA + 64 * (next % 256);
                memory.writeU64(base, next);
                addrs[0] = base;
                addrs[1] = base + 16;
                addrs[2] = base + 32;
                int kind = rnd.nextInt(4);
                int id = kind == 3 ? d.addIndirect(addrs, lens, 3, 1, next)
                        : kind == 0 ? d.add(new long[] {base, base + 16}, new int[] {8, 9}, 2, 1, next)
                        : d.add(addrs, lens, 3, 1, next);
                if (id < 0) {
                    break; // full: what is held completes first
                }
                next++;
            }
            d.publish();
            DescriptorChain c;
            while ((c = q.pop()) != null) {
                held.add(c);
            }
            // Complete what was popped in a shuffled order, some of it later.
            List<DescriptorChain> now = new ArrayList<>(held);
            held.clear();
            java.util.Collections.shuffle(now, rnd);
            for (DescriptorChain ch : now) {
                if (rnd.nextInt(4) == 0) {
                    held.add(ch);
                    continue;
                }
                long v = ch.reader().readU64();
                var w = ch.writer();
                w.writeU64(~v);
                w.writeU8(0);
                q.addUsed(ch, 9);
            }
            q.publishUsed();
            d.pollUsed((id, token, len) -> {
                assertEquals(9, len);
                assertEquals(~token, memory.readU64(DATA + 64 * (token % 256) + 16));
                assertFalse(seen[(int) token], "request " + token + " returned twice");
                seen[(int) token] = true;
                count[0]++;
            });
        }
        for (DescriptorChain ch : held) {
            q.addUsed(ch, 0);
        }
        q.publishUsed();
        d.pollUsed((id, token, len) -> count[0]++);
        assertEquals(seen.length, count[0]);
        assertEquals(SIZE, d.freeDescriptors());
        assertEquals(0, d.inFlight());
        assertEquals(0, q.inFlight());
        assertFalse(q.isBroken(), () -> q.violation().message());
    }

    @Test
    void kicksAreSuppressedWhileTheDevicePollsAndAskedForAgain() throws Exception {
        for (boolean eventIdx : new boolean[] {true, false}) {
            long feat = features(eventIdx);
            QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, -1, 0);
            RingQueue q = device(d, feat);
            long[] a = {DATA};
            int[] l = {8};
            d.add(a, l, 1, 1, 0);
            assertTrue(d.publish(), "a fresh device wants the first kick");
            q.disableNotifications();
            q.addUsed(q.pop(), 0);
            q.publishUsed();
            d.pollUsed((h, t, n) -> { });
            d.add(a, l, 1, 1, 1);
            assertFalse(d.publish(), "device said it is polling (eventIdx=" + eventIdx + ")");
            q.addUsed(q.pop(), 0);
            q.publishUsed();
            assertFalse(q.enableNotifications());
            d.add(a, l, 1, 1, 2);
            assertTrue(d.publish(), "device asked for kicks again (eventIdx=" + eventIdx + ")");
            assertTrue(q.enableNotifications(), "and the re-check finds the chain");
        }
    }

    @Test
    void interruptsAreSuppressedWhileTheDriverPollsAndTheReCheckFindsWhatCameMeanwhile() throws Exception {
        for (boolean eventIdx : new boolean[] {true, false}) {
            long feat = features(eventIdx);
            QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, -1, 0);
            RingQueue q = device(d, feat);
            long[] a = {DATA};
            int[] l = {8};
            d.add(a, l, 1, 1, 0);
            d.add(a, l, 1, 1, 1);
            d.publish();
            assertFalse(d.enableInterrupts(), "nothing used yet");
            q.addUsed(q.pop(), 0);
            assertTrue(q.publishUsed(), "the driver asked for an interrupt (eventIdx=" + eventIdx + ")");
            assertTrue(d.hasUsed());
            assertEquals(1, d.pollUsed((h, t, n) -> { }));
            d.disableInterrupts();
            q.addUsed(q.pop(), 0);
            assertFalse(q.publishUsed(), "driver is polling (eventIdx=" + eventIdx + ")");
            assertTrue(d.enableInterrupts(), "re-check finds the element published meanwhile");
        }
    }

    /** With EVENT_IDX the device interrupts once the driver's event position is passed, not for every used buffer. */
    @Test
    void withEventIdxTheInterruptComesWhenTheEventPositionIsPassed() throws Exception {
        long feat = features(true);
        QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, -1, 0);
        RingQueue q = device(d, feat);
        long[] a = {DATA};
        int[] l = {8};
        for (int i = 0; i < 3; i++) {
            d.add(a, l, 1, 1, i);
        }
        d.publish();
        DescriptorChain c0 = q.pop();
        DescriptorChain c1 = q.pop();
        DescriptorChain c2 = q.pop();
        assertFalse(d.enableInterrupts());
        q.addUsed(c0, 0);
        assertTrue(q.publishUsed(), "the first publish always interrupts");
        assertEquals(1, d.pollUsed((h, t, n) -> { }));
        assertFalse(d.enableInterrupts(), "asks for the next one");
        q.addUsed(c1, 0);
        assertTrue(q.publishUsed(), "passes the event position");
        q.addUsed(c2, 0);
        assertFalse(q.publishUsed(), "the driver has not asked again: no interrupt");
        assertEquals(2, d.pollUsed((h, t, n) -> { }));
    }

    @Test
    void aChainPutBackIsPoppedAgainWithTheSameBuffers() throws Exception {
        long feat = features(true);
        QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, INDIRECT, 4);
        RingQueue q = device(d, feat);
        int first = d.add(new long[] {DATA, DATA + 64}, new int[] {16, 32}, 2, 1, 7);
        int second = d.add(new long[] {DATA + 128}, new int[] {8}, 1, 0, 8);
        d.publish();
        DescriptorChain a = q.pop();
        DescriptorChain b = q.pop();
        assertEquals(first, a.head());
        assertEquals(second, b.head());
        q.addUsed(a, 4); // completed before the put-back: packed writes it where b's descriptors were not
        q.unpop(b);
        assertThrows(IllegalStateException.class, () -> q.unpop(b), "only once");
        DescriptorChain again = q.pop();
        assertEquals(second, again.head());
        assertEquals(1, again.bufferCount());
        assertEquals(8, again.writableLength());
        q.addUsed(again, 8);
        q.publishUsed();
        List<Long> tokens = new ArrayList<>();
        d.pollUsed((h, t, n) -> tokens.add(t));
        assertEquals(List.of(7L, 8L), tokens);
        assertFalse(q.isBroken());
    }

    /**
     * Several chains put back, latest first (a network device that took buffers for a frame and
     * found too few): the ring is as before they were popped, and they come again in order. A
     * chain popped before one that was returned cannot come back.
     */
    @Test
    void severalChainsArePutBackLatestFirst() throws Exception {
        long feat = features(true);
        QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, INDIRECT, 4);
        RingQueue q = device(d, feat);
        for (int i = 0; i < 4; i++) {
            assertTrue(d.add(new long[] {DATA + 64L * i, DATA + 64L * i + 16}, new int[] {16, 16 + i}, 2, 1, i) >= 0);
        }
        d.publish();
        DescriptorChain a = q.pop();
        DescriptorChain b = q.pop();
        DescriptorChain c = q.pop();
        assertThrows(IllegalStateException.class, () -> q.unpop(b), "c first");
        q.unpop(c);
        assertThrows(IllegalStateException.class, () -> q.unpop(c), "only once");
        q.unpop(b);
        assertEquals(1, q.inFlight());
        DescriptorChain b2 = q.pop();
        DescriptorChain c2 = q.pop();
        assertEquals(17, b2.writableLength(), "b again");
        assertEquals(18, c2.writableLength(), "then c");
        q.addUsed(c2, 0);
        assertThrows(IllegalStateException.class, () -> q.unpop(b2), "popped before a chain that was returned");
        q.addUsed(b2, 0);
        assertThrows(IllegalStateException.class, () -> q.unpop(a), "chains popped after it were returned");
        DescriptorChain last = q.pop();
        assertEquals(19, last.writableLength());
        q.unpop(last);
        q.addUsed(a, 0);
        q.publishUsed();
        List<Long> tokens = new ArrayList<>();
        d.pollUsed((h, t, n) -> tokens.add(t));
        assertEquals(List.of(2L, 1L, 0L), tokens);
        DescriptorChain again = q.pop();
        assertEquals(19, again.writableLength(), "the last chain put back is the driver's still");
        assertNull(q.pop());
        assertFalse(q.isBroken());
    }

    /** Chains returned together land in the order given, after a check of every one (a bad one: nothing written). */
    @Test
    void chainsReturnedTogetherLandInOrderAndABadOneChangesNothing() throws Exception {
        long feat = features(true);
        QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, INDIRECT, 4);
        RingQueue q = device(d, feat);
        for (int round = 0; round < 20; round++) { // laps: the group crosses the wrap of a packed ring
            for (int i = 0; i < 3; i++) {
                assertTrue(d.add(new long[] {DATA + 64L * i, DATA + 64L * i + 16}, new int[] {16, 32}, 2, 1 - i % 2, i) >= 0);
            }
            d.publish();
            DescriptorChain[] c = {q.pop(), q.pop(), q.pop()};
            int[] tooLong = {1, 2, 1000};
            assertThrows(IllegalArgumentException.class, () -> q.addUsedTogether(c, tooLong, 3));
            assertEquals(3, q.inFlight(), "nothing returned");
            q.addUsedTogether(c, new int[] {5, 6, 7}, 3);
            assertEquals(0, q.inFlight());
            q.publishUsed();
            List<Long> tokens = new ArrayList<>();
            List<Integer> lengths = new ArrayList<>();
            assertEquals(3, d.pollUsed((h, t, n) -> {
                tokens.add(t);
                lengths.add(n);
            }));
            assertEquals(List.of(0L, 1L, 2L), tokens);
            assertEquals(List.of(5, 6, 7), lengths);
        }
        assertFalse(q.isBroken());
    }

    @Test
    void aFullRingRefusesMoreChains() throws Exception {
        QueueDriver d = QueueDriver.at(memory, RING, 4, features(false), -1, 0);
        long[] a = {DATA, DATA, DATA};
        int[] l = {1, 1, 1};
        assertTrue(d.add(a, l, 3, 1, 0) >= 0);
        assertEquals(-1, d.add(a, l, 2, 1, 0));
        assertTrue(d.add(a, l, 1, 1, 0) >= 0);
        assertEquals(0, d.freeDescriptors());
        assertEquals(-1, d.nextHead());
    }

    @Test
    void aDeviceThatStopsAndRestartsAtItsStateLosesNothing() throws Exception {
        long feat = features(true);
        QueueDriver d = QueueDriver.at(memory, RING, SIZE, feat, -1, 0);
        RingQueue q = device(d, feat);
        long[] a = {DATA};
        int[] l = {8};
        int served = 0;
        for (int round = 0; round < 40; round++) {
            for (int i = 0; i < 3; i++) {
                d.add(a, l, 1, 1, round * 3 + i);
            }
            d.publish();
            DescriptorChain c;
            while ((c = q.pop()) != null) {
                q.addUsed(c, 0);
            }
            q.publishUsed();
            served += d.pollUsed((h, t, n) -> { });
            // Stop and start a new queue object at the old one's state (vhost-user GET/SET_VRING_BASE).
            int avail = q instanceof PackedQueue p ? p.availState() : ((SplitQueue) q).nextAvail();
            int used = q instanceof PackedQueue p ? p.usedState() : ((SplitQueue) q).nextUsed();
            q.deactivate();
            q = RingQueue.create(0, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS, feat);
            q.activate(memory, SIZE, d.descAddr(), d.availAddr(), d.usedAddr(), feat, avail, used);
        }
        assertEquals(120, served);
        assertEquals(0, d.inFlight());
    }
}
