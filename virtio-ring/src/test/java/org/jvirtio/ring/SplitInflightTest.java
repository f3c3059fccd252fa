package org.jvirtio.ring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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

/**
 * Inflight tracking (issue 12) at the ring: a backend that dies with requests in flight, out of
 * order, and a successor that attaches the same region resubmits exactly those, in the order they
 * were taken, and reads the avail ring from used_idx plus their number; a predecessor that died
 * between publishing a batch and clearing it is repaired; hostile regions are started afresh.
 */
class SplitInflightTest {
    static final int SIZE = 16;
    GuestMemory mem;
    SplitQueueDriver driver;
    MemorySegment region;
    long f = VirtioFeatures.RING_FEATURES;

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(1 << 20);
        driver = SplitQueueDriver.at(mem, 0x1000, SIZE, f, 0, 0);
        region = Arena.ofAuto().allocate(SplitInflight.queueRegionSize(SIZE), 64);
    }

    @AfterEach
    void tearDown() {
        mem.release();
    }

    /** A backend: a queue on the ring with the region attached (as after SET_VRING_BASE = used idx, SET_VRING_KICK). */
    SplitQueue backend() throws Exception {
        SplitQueue q = new SplitQueue(0);
        int usedIdx = mem.readU16(driver.usedAddr() + 2);
        q.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, usedIdx, -1);
        InflightAttached a = q.attachInflight(region);
        assertNull(a.inconsistency(), "consistent region");
        return q;
    }

    void add(int n, int from) {
        for (int i = 0; i < n; i++) {
            assertTrue(driver.add(new long[] {0x10000 + 64L * (from + i)}, new int[] {8}, 1, 0, from + i) >= 0);
        }
        driver.publish();
    }

    List<DescriptorChain> popAll(SplitQueue q) {
        List<DescriptorChain> l = new ArrayList<>();
        DescriptorChain c;
        while ((c = q.pop()) != null) {
            l.add(c);
        }
        return l;
    }

    @Test
    void aSuccessorResubmitsExactlyWhatNeverCompletedInTheOrderItWasTaken() throws Exception {
        SplitQueue first = backend();
        add(6, 0);
        List<DescriptorChain> taken = popAll(first);
        assertEquals(6, taken.size());
        // Out of order, as io_uring completes: 4 and 1 done and published, 3 done but not yet published.
        first.addUsed(taken.get(4), 1);
        first.addUsed(taken.get(1), 1);
        first.publishUsed();
        first.addUsed(taken.get(3), 1);
        // ... and the process dies here: the queue object is simply dropped.
        List<Long> got = new ArrayList<>();
        driver.pollUsed((h, t, l) -> got.add(t));
        assertEquals(List.of(4L, 1L), got);

        add(2, 6); // the guest goes on adding while no backend runs
        SplitQueue second = backend();
        List<DescriptorChain> again = popAll(second);
        List<Integer> heads = new ArrayList<>();
        for (DescriptorChain c : again) {
            heads.add(c.head());
        }
        // Resubmitted first, in their original order: 0, 2, 3, 5; then the new ones.
        List<Integer> expected = new ArrayList<>();
        for (int i : new int[] {0, 2, 3, 5}) {
            expected.add(taken.get(i).head());
        }
        assertEquals(expected, heads.subList(0, 4), "resubmitted in the order taken");
        assertEquals(6, again.size(), "then the two added since");
        for (DescriptorChain c : again) {
            second.addUsed(c, 1);
        }
        second.publishUsed();
        got.clear();
        driver.pollUsed((h, t, l) -> got.add(t));
        assertEquals(List.of(0L, 2L, 3L, 5L, 6L, 7L), got, "every request completed once, none twice");
        // A third backend finds nothing to do.
        SplitQueue third = backend();
        assertNull(third.pop());
    }

    /**
     * A chain put back (the device had nothing for it) is forgotten by the region: a successor
     * resubmits only what was really taken and finds the put-back head in the ring. A resubmitted
     * head put back is resubmitted again.
     */
    @Test
    void aChainPutBackIsNotResubmittedAndAResubmittedOnePutBackComesAgain() throws Exception {
        SplitQueue first = backend();
        add(3, 0);
        DescriptorChain a = first.pop();
        DescriptorChain b = first.pop();
        first.unpop(b);
        assertEquals(0, region.get(ValueLayout.JAVA_BYTE, SplitInflight.DESC + 16L * b.head() + SplitInflight.D_INFLIGHT),
                "its flag is cleared");
        // The process dies with only a taken.
        SplitQueue second = backend();
        DescriptorChain again = second.pop();
        assertEquals(a.head(), again.head(), "a is resubmitted");
        second.unpop(again);
        DescriptorChain once = second.pop();
        assertEquals(a.head(), once.head(), "put back, it is resubmitted again");
        List<DescriptorChain> rest = popAll(second);
        assertEquals(2, rest.size(), "then b and c from the ring, once each");
        assertEquals(b.head(), rest.get(0).head());
        second.addUsed(once, 1);
        for (DescriptorChain c : rest) {
            second.addUsed(c, 1);
        }
        second.publishUsed();
        List<Long> got = new ArrayList<>();
        driver.pollUsed((h, t, l) -> got.add(t));
        assertEquals(List.of(0L, 1L, 2L), got, "every request completed once, none twice");
        assertNull(backend().pop(), "nothing left for a third");
    }

    @Test
    void aPredecessorThatDiedBetweenPublishingAndClearingIsRepaired() throws Exception {
        SplitQueue first = backend();
        add(3, 0);
        List<DescriptorChain> taken = popAll(first);
        first.addUsed(taken.get(0), 1);
        first.addUsed(taken.get(2), 1);
        first.publishUsed();
        // Undo what published() did after the used index: the flags and used_idx, as a death in between leaves them.
        for (DescriptorChain c : List.of(taken.get(0), taken.get(2))) {
            region.set(ValueLayout.JAVA_BYTE, SplitInflight.DESC + 16L * c.head(), (byte) 1);
        }
        region.set(ValueLayout.JAVA_SHORT_UNALIGNED, SplitInflight.USED_IDX, (short) 0);
        SplitQueue second = backend();
        List<DescriptorChain> again = popAll(second);
        assertEquals(1, again.size(), "only the one that never completed");
        assertEquals(taken.get(1).head(), again.get(0).head());
    }

    @Test
    void hostileRegionsAreStartedAfreshAndNothingIsResubmitted() throws Exception {
        String[] cases = {"version", "desc_num", "features", "flag", "batch", "counters"};
        for (String c : cases) {
            region.fill((byte) 0);
            SplitQueue first = backend();
            add(2, 0);
            List<DescriptorChain> taken = popAll(first); // two in flight
            switch (c) {
                case "version" -> region.set(ValueLayout.JAVA_SHORT_UNALIGNED, SplitInflight.VERSION_OFF, (short) 7);
                case "desc_num" -> region.set(ValueLayout.JAVA_SHORT_UNALIGNED, SplitInflight.DESC_NUM, (short) 1024);
                case "features" -> region.set(ValueLayout.JAVA_LONG_UNALIGNED, SplitInflight.FEATURES, 1);
                case "flag" -> region.set(ValueLayout.JAVA_BYTE, SplitInflight.DESC + 16L * 5, (byte) 9);
                case "batch" -> region.set(ValueLayout.JAVA_SHORT_UNALIGNED, SplitInflight.USED_IDX, (short) 1000);
                default -> {
                    long counter = region.get(ValueLayout.JAVA_LONG_UNALIGNED, SplitInflight.DESC + 16L * taken.get(0).head() + 8);
                    region.set(ValueLayout.JAVA_LONG_UNALIGNED, SplitInflight.DESC + 16L * taken.get(1).head() + 8, counter);
                }
            }
            SplitQueue second = new SplitQueue(0);
            int usedIdx = mem.readU16(driver.usedAddr() + 2);
            second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, usedIdx + 2, -1);
            InflightAttached a = second.attachInflight(region);
            assertNotNull(a.inconsistency(), c + ": refused");
            assertEquals(0, a.resubmitted(), c);
            assertNull(second.pop(), c + ": nothing resubmitted; the ring goes on at the front-end's base");
            assertEquals(1, region.get(ValueLayout.JAVA_SHORT_UNALIGNED, SplitInflight.VERSION_OFF), c + ": started afresh");
            // reset the ring for the next case
            setUp();
            region = Arena.ofAuto().allocate(SplitInflight.queueRegionSize(SIZE), 64);
        }
    }

    /**
     * The front-end makes the region for its queue size; a guest's driver may use a smaller ring
     * (QEMU 7.2 asked for 1024 entries where Linux set up 256). Tracking works in the bigger
     * region, and a head in flight beyond the ring is refused.
     */
    @Test
    void aRingSmallerThanTheRegionIsTrackedAndHeadsBeyondItAreRefused() throws Exception {
        region = Arena.ofAuto().allocate(SplitInflight.queueRegionSize(4 * SIZE), 64);
        SplitQueue first = new SplitQueue(0);
        first.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, 0, -1);
        assertNull(first.attachInflight(region, 4 * SIZE).inconsistency());
        add(3, 0);
        List<DescriptorChain> taken = popAll(first);
        first.addUsed(taken.get(1), 1);
        first.publishUsed();
        SplitQueue second = new SplitQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, 1, -1);
        InflightAttached a = second.attachInflight(region, 4 * SIZE);
        assertNull(a.inconsistency());
        assertEquals(2, a.resubmitted());
        assertEquals(List.of(taken.get(0).head(), taken.get(2).head()), popAll(second).stream().map(DescriptorChain::head).toList());
        // A flag set beyond the ring's 16 entries: the region is refused.
        region.set(ValueLayout.JAVA_BYTE, SplitInflight.DESC + 16L * (SIZE + 3), (byte) 1);
        SplitQueue third = new SplitQueue(0);
        third.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, 3, -1);
        InflightAttached b = third.attachInflight(region, 4 * SIZE);
        assertNotNull(b.inconsistency());
        assertTrue(b.inconsistency().contains("outside a ring of 16"), b.inconsistency());
    }

    @Test
    void aFreshRegionIsInitializedAndTrackingCostsNoAllocation() throws Exception {
        SplitQueue q = backend();
        assertEquals(1, region.get(ValueLayout.JAVA_SHORT_UNALIGNED, SplitInflight.VERSION_OFF));
        assertEquals(SIZE, region.get(ValueLayout.JAVA_SHORT_UNALIGNED, SplitInflight.DESC_NUM));
        for (int round = 0; round < 100; round++) {
            add(8, 8 * round);
            for (DescriptorChain c : popAll(q)) {
                q.addUsed(c, 1);
            }
            q.publishUsed();
            driver.pollUsed((h, t, l) -> { });
        }
        for (int i = 0; i < SIZE; i++) {
            assertEquals(0, region.get(ValueLayout.JAVA_BYTE, SplitInflight.DESC + 16L * i), "nothing left in flight");
        }
        assertEquals(mem.readU16(driver.usedAddr() + 2), Short.toUnsignedInt(region.get(ValueLayout.JAVA_SHORT_UNALIGNED, SplitInflight.USED_IDX)));
    }
}
