package org.jvirtio.ring;

import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The driver half against the device half, one thread, both over one memfd mapping. */
class SplitQueueDriverTest {
    private static final long RING = 0x1000;
    private static final long INDIRECT = 0x10000;
    private static final long DATA = 0x40000;
    private static final int SIZE = 16;
    private GuestMemory memory;

    @BeforeEach
    void setUp() throws Exception {
        memory = TestMemory.memfd(1 << 20);
    }

    @AfterEach
    void tearDown() {
        memory.release();
    }

    private static long features(boolean eventIdx) {
        return VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.INDIRECT_DESC)
                | (eventIdx ? VirtioFeatures.bit(VirtioFeatures.EVENT_IDX) : 0);
    }

    private SplitQueue device(SplitQueueDriver d, long features) throws Exception {
        SplitQueue q = new SplitQueue(0);
        q.activate(memory, d.size(), d.descAddr(), d.availAddr(), d.usedAddr(), features, 0, 0);
        return q;
    }

    @Test
    void seventyThousandRequestsWrapBothIndicesAndFreeEveryDescriptor() throws Exception {
        long feat = features(true);
        SplitQueueDriver d = SplitQueueDriver.at(memory, RING, SIZE, feat, INDIRECT, 4);
        SplitQueue q = device(d, feat);
        long[] addrs = new long[3];
        int[] lens = {8, 8, 1};
        List<Long> done = new ArrayList<>();
        long next = 0;
        for (int round = 0; round < 70_000 / 4; round++) {
            for (int i = 0; i < 4; i++, next++) {
                long base = DATA + 64 * (next % 64);
                memory.writeU64(base, next);
                addrs[0] = base;
                addrs[1] = base + 16;
                addrs[2] = base + 32;
                int head = (next % 2 == 0) ? d.add(addrs, lens, 3, 1, next) : d.addIndirect(addrs, lens, 3, 1, next);
                assertTrue(head >= 0);
            }
            d.publish();
            DescriptorChain c;
            while ((c = q.pop()) != null) {
                long v = c.reader().readU64();
                var w = c.writer();
                w.writeU64(~v);
                w.writeU8(0);
                q.addUsed(c, 9);
            }
            q.publishUsed();
            d.pollUsed((head, token, len) -> {
                assertEquals(9, len);
                assertEquals(~token, memory.readU64(DATA + 64 * (token % 64) + 16));
                done.add(token);
            });
        }
        assertEquals(70_000 / 4 * 4, done.size());
        for (int i = 0; i < done.size(); i++) {
            assertEquals(i, done.get(i));
        }
        assertEquals(SIZE, d.freeDescriptors());
        assertEquals(0, d.inFlight());
        assertFalse(q.isBroken());
        assertEquals((70_000 / 4 * 4) & 0xffff, q.nextUsed());
    }

    @Test
    void driverHonoursAvailEventAndNoNotify() throws Exception {
        for (boolean eventIdx : new boolean[] {true, false}) {
            long feat = features(eventIdx);
            SplitQueueDriver d = SplitQueueDriver.at(memory, RING, SIZE, feat, -1, 0);
            SplitQueue q = device(d, feat);
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
        }
    }

    @Test
    void driverInterruptSuppression() throws Exception {
        long feat = features(true);
        SplitQueueDriver d = SplitQueueDriver.at(memory, RING, SIZE, feat, -1, 0);
        SplitQueue q = device(d, feat);
        long[] a = {DATA};
        int[] l = {8};
        d.add(a, l, 1, 1, 0);
        d.add(a, l, 1, 1, 1);
        d.publish();
        assertFalse(d.enableInterrupts(), "nothing used yet");
        q.addUsed(q.pop(), 0);
        assertTrue(q.publishUsed(), "used_event 0 is passed by the first element");
        assertTrue(d.hasUsed());
        d.pollUsed((h, t, n) -> { });
        d.disableInterrupts(); // stale used_event (0) from now on
        q.addUsed(q.pop(), 0);
        assertFalse(q.publishUsed(), "driver is polling");
        assertTrue(d.enableInterrupts(), "re-check finds the element published meanwhile");
    }

    @Test
    void misbehavingDeviceIsDetected() throws Exception {
        long feat = features(false);
        SplitQueueDriver d = SplitQueueDriver.at(memory, RING, SIZE, feat, -1, 0);
        d.add(new long[] {DATA}, new int[] {8}, 1, 1, 0);
        d.publish();
        var p = SplitRingLayout.place(RING, SIZE);
        memory.writeU32(p.used() + 4, 7); // id 7 was never made available
        memory.writeU16(p.used() + 2, 1);
        assertThrows(SplitQueueDriver.DeviceMisbehaviourException.class, () -> d.pollUsed((h, t, n) -> { }));
        memory.writeU16(p.used() + 2, 5);
        assertThrows(SplitQueueDriver.DeviceMisbehaviourException.class, () -> d.pollUsed((h, t, n) -> { }));
    }

    @Test
    void fullRingRefusesMoreChains() throws Exception {
        SplitQueueDriver d = SplitQueueDriver.at(memory, RING, 4, features(false), -1, 0);
        long[] a = {DATA, DATA, DATA};
        int[] l = {1, 1, 1};
        assertTrue(d.add(a, l, 3, 1, 0) >= 0);
        assertEquals(-1, d.add(a, l, 2, 1, 0));
        assertTrue(d.add(a, l, 1, 1, 0) >= 0);
        assertEquals(0, d.freeDescriptors());
    }
}
