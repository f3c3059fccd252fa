package org.jvirtio.ring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Inflight tracking of packed rings (vhost-user.rst, QueueRegionPacked): a backend dies with
 * chains in flight whose ring descriptors used descriptors have overwritten since; a successor
 * rebuilds them from the region, resubmits exactly those in the order they were taken, and
 * finds the ring's positions from the region although the front-end's base is stale (QEMU's is,
 * after a crash). A death between any two steps of taking or returning a chain is committed or
 * rolled back so that the driver sees every buffer returned exactly once; hostile regions are
 * started afresh. A ring size that is not a power of two, as packed rings allow.
 */
class PackedInflightTest {
    static final int SIZE = 12;
    static final long DATA = 0x40000;
    final long f = VirtioFeatures.RING_FEATURES | VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
    GuestMemory mem;
    PackedQueueDriver driver;
    MemorySegment region;
    /** Buffers of each chain the driver made available, by token: what a resubmission must rebuild. */
    final Map<Long, List<String>> offered = new HashMap<>();
    /** Tokens the driver got back, in order. */
    final List<Long> returned = new ArrayList<>();

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(1 << 20);
        driver = PackedQueueDriver.at(mem, 0x1000, SIZE, f, 0x20000, 4);
        region = Arena.ofAuto().allocate(PackedInflight.queueRegionSize(SIZE), 64);
        offered.clear();
        returned.clear();
    }

    @AfterEach
    void tearDown() {
        mem.release();
    }

    /** A backend on the ring at {@code base} (vhost-user's encoding: avail in the low half, used in the high), the region attached. */
    PackedQueue backend(int base) throws Exception {
        PackedQueue q = new PackedQueue(0);
        q.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, base & 0xffff, base >>> 16);
        InflightAttached a = q.attachInflight(region, SIZE);
        assertNull(a.inconsistency(), "consistent region");
        return q;
    }

    static final int FRESH = PackedQueue.FRESH | PackedQueue.FRESH << 16;

    /** A chain of {@code n} buffers (the first readable), or an indirect one. */
    void add(long token, int n, boolean indirect) {
        long[] addrs = new long[n];
        int[] lens = new int[n];
        List<String> bufs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            addrs[i] = DATA + 0x100 * token + 16L * i;
            lens[i] = 8 + i;
            bufs.add(Long.toHexString(addrs[i]) + "+" + lens[i] + (i > 0 ? "w" : "r"));
        }
        int id = indirect ? driver.addIndirect(addrs, lens, n, 1, token) : driver.add(addrs, lens, n, 1, token);
        assertTrue(id >= 0, "room for chain " + token);
        offered.put(token, bufs);
        driver.publish();
    }

    static List<String> buffers(DescriptorChain c) {
        List<String> l = new ArrayList<>();
        for (int i = 0; i < c.bufferCount(); i++) {
            l.add(Long.toHexString(c.bufferGuestAddress(i)) + "+" + c.bufferLength(i) + (c.isWritable(i) ? "w" : "r"));
        }
        return l;
    }

    List<DescriptorChain> popAll(PackedQueue q) {
        List<DescriptorChain> l = new ArrayList<>();
        DescriptorChain c;
        while ((c = q.pop()) != null) {
            l.add(c);
        }
        return l;
    }

    void reap() {
        driver.pollUsed((id, token, len) -> returned.add(token));
    }

    /** The token the driver gave the chain with this buffer id (its buffers say). */
    long tokenOf(DescriptorChain c) {
        List<String> b = buffers(c);
        return offered.entrySet().stream().filter(e -> e.getValue().equals(b)).findFirst().orElseThrow(
                () -> new AssertionError("chain " + c + " with buffers " + b + " was never offered")).getKey();
    }

    @Test
    void aSuccessorRebuildsResubmitsAndFindsThePositionsTheFrontEndCannotGive() throws Exception {
        PackedQueue first = backend(FRESH);
        add(1, 3, false);
        add(2, 1, false);
        add(3, 2, false);
        add(4, 2, true);
        add(5, 1, false);
        List<DescriptorChain> taken = popAll(first);
        assertEquals(5, taken.size());
        // 2 and 4 return first: their used descriptors go to positions 0 and 1, over chain 1's.
        first.addUsed(taken.get(1), 0);
        first.addUsed(taken.get(3), 4);
        first.publishUsed();
        reap();
        assertEquals(List.of(2L, 4L), returned);
        // The backend dies. QEMU sends the base it gave at the start: avail 0/1, used 0/1.
        PackedQueue second = new PackedQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, PackedQueue.FRESH);
        InflightAttached a = second.attachInflight(region, SIZE);
        assertNull(a.inconsistency());
        assertEquals(3, a.resubmitted());
        assertNotNull(a.note(), "the region's positions differ from the stale base");
        assertEquals(2 | PackedQueue.FRESH, second.usedState(), "used: after chains 2 and 4 (one descriptor each)");
        assertEquals(8 | PackedQueue.FRESH, second.availState(), "avail: after the 8 ring descriptors taken (the indirect chain is one)");
        List<DescriptorChain> again = popAll(second);
        assertEquals(List.of(1L, 3L, 5L), again.stream().map(this::tokenOf).toList(), "in the order taken, rebuilt whole");
        // New chains after the resubmissions come from the ring, where the driver goes on.
        add(6, 2, false);
        add(7, 1, true);
        DescriptorChain c6 = second.pop();
        DescriptorChain c7 = second.pop();
        assertEquals(6L, tokenOf(c6));
        assertEquals(7L, tokenOf(c7));
        for (DescriptorChain c : List.of(again.get(2), c6, again.get(0), c7, again.get(1))) {
            second.addUsed(c, 0);
        }
        second.publishUsed(); // written together, in ring order, each inside the region's protocol
        second.publishUsed();
        reap(); // throws if a buffer id comes back that is not in flight
        assertEquals(List.of(2L, 4L, 5L, 6L, 1L, 7L, 3L), returned, "every chain back exactly once");
        assertEquals(driver.availState(), second.availState());
        assertEquals(second.availState(), second.usedState(), "nothing in flight");
    }

    /**
     * A death while returning a buffer. Before the ring's used store: rolled back, the buffer
     * served again (the driver never saw it). After it: committed, not served again (the driver
     * may have seen it, and may even have made the position available again since).
     */
    @ParameterizedTest
    @ValueSource(strings = {"beforeRingStore", "afterRingStore", "afterRingStoreAndReuse", "beforeOldFields"})
    void aDeathWhileReturningIsCommittedOrRolledBack(String when) throws Exception {
        PackedQueue first = backend(FRESH);
        boolean reuse = when.equals("afterRingStoreAndReuse");
        if (reuse) {
            // A lap's first 10 positions served, so that chain 1 ends the lap and chain 2 wraps.
            for (long t = 101; t <= 105; t++) {
                add(t, 2, false);
            }
            for (DescriptorChain c : popAll(first)) {
                first.addUsed(c, 0);
                first.publishUsed();
            }
            reap();
            returned.clear();
        }
        add(1, 2, false);
        add(2, 1, false);
        List<DescriptorChain> taken = popAll(first);
        PackedInflight t = first.inflightTracker();
        int id = taken.get(0).head();
        int expectedResubmit;
        switch (when) {
            case "beforeRingStore" -> {
                t.returning(id); // the used descriptor never reached the ring
                expectedResubmit = 2;
            }
            case "beforeOldFields" -> {
                // Everything but the old_ fields: the flag is cleared, used_idx moved.
                MemorySegment before = snapshot();
                first.addUsed(taken.get(0), 0);
                first.publishUsed();
                region.set(ValueLayout.JAVA_INT_UNALIGNED, PackedInflight.OLD_USED_IDX,
                        before.get(ValueLayout.JAVA_INT_UNALIGNED, PackedInflight.OLD_USED_IDX));
                region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_FREE_HEAD,
                        before.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_FREE_HEAD));
                expectedResubmit = 1;
            }
            default -> {
                // The ring store happened (as addUsed does it), then the death before the flag is cleared.
                MemorySegment before = snapshot();
                first.addUsed(taken.get(0), 0);
                first.publishUsed();
                restoreExceptUsed(before);
                if (reuse) {
                    reap();
                    add(3, 1, false);
                    add(4, 9, false); // over positions 2-10: the driver made position 10 available again
                }
                expectedResubmit = 1;
            }
        }
        PackedQueue second = new PackedQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, PackedQueue.FRESH);
        InflightAttached a = second.attachInflight(region, SIZE);
        assertNull(a.inconsistency(), when);
        assertEquals(expectedResubmit, a.resubmitted(), when);
        for (DescriptorChain c : popAll(second)) {
            second.addUsed(c, 0);
        }
        second.publishUsed(); // written together, in ring order, each inside the region's protocol
        second.publishUsed();
        reap(); // a buffer returned twice throws here
        List<Long> sorted = returned.stream().sorted().toList();
        assertEquals(reuse ? List.of(1L, 2L, 3L, 4L) : List.of(1L, 2L), sorted, when + ": each once");
        assertEquals(driver.availState(), second.availState(), when);
        assertEquals(second.availState(), second.usedState(), when + ": nothing in flight");
    }

    /** A copy of the region as it is now. */
    MemorySegment snapshot() {
        MemorySegment s = Arena.ofAuto().allocate(region.byteSize(), 64);
        s.copyFrom(region);
        return s;
    }

    /**
     * Puts back what {@code returned} changed after the ring store (the flag, old_free_head and
     * the old_ used fields), keeping what {@code returning} changed before it: the state a death
     * right after the ring's used store leaves.
     */
    void restoreExceptUsed(MemorySegment before) {
        for (long e = 0; e < SIZE; e++) {
            long off = PackedInflight.DESC + PackedInflight.DESC_SIZE * e + PackedInflight.D_INFLIGHT;
            region.set(ValueLayout.JAVA_BYTE, off, before.get(ValueLayout.JAVA_BYTE, off));
        }
        region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_FREE_HEAD,
                before.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_FREE_HEAD));
        region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_USED_IDX,
                before.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_USED_IDX));
        region.set(ValueLayout.JAVA_BYTE, PackedInflight.OLD_USED_WRAP, before.get(ValueLayout.JAVA_BYTE, PackedInflight.OLD_USED_WRAP));
    }

    /** A death while taking a chain (its descriptors copied, the free list not yet moved): the ring offers it again. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void aDeathWhileTakingLeavesTheChainInTheRing(boolean afterFreeHead) throws Exception {
        PackedQueue first = backend(FRESH);
        add(1, 1, false);
        add(2, 3, false);
        DescriptorChain c1 = first.pop();
        MemorySegment before = snapshot();
        assertNotNull(first.pop());
        // Undo what taking chain 2 committed, keeping its copied descriptors (and free_head if asked).
        region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_FREE_HEAD,
                before.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_FREE_HEAD));
        if (!afterFreeHead) {
            region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.FREE_HEAD,
                    before.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.FREE_HEAD));
        }
        PackedQueue second = new PackedQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, PackedQueue.FRESH);
        InflightAttached a = second.attachInflight(region, SIZE);
        assertNull(a.inconsistency());
        assertEquals(1, a.resubmitted(), "chain 1 only");
        assertEquals(1 | PackedQueue.FRESH, second.availState(), "chain 2 is read from the ring again");
        List<DescriptorChain> all = popAll(second);
        assertEquals(List.of(1L, 2L), all.stream().map(this::tokenOf).toList());
        assertEquals(buffers(c1), buffers(all.get(0)));
        for (DescriptorChain c : all) {
            second.addUsed(c, 0);
        }
        second.publishUsed(); // written together, in ring order, each inside the region's protocol
        reap();
        assertEquals(List.of(1L, 2L), returned);
    }

    /** unpop puts a chain back: the region forgets it, and a resubmitted one waits to be resubmitted again. */
    @Test
    void unpopIsUndoneInTheRegion() throws Exception {
        PackedQueue first = backend(FRESH);
        add(1, 2, false);
        add(2, 1, false);
        DescriptorChain c1 = first.pop();
        DescriptorChain c2 = first.pop();
        first.unpop(c2);
        first.addUsed(c1, 0);
        first.publishUsed();
        reap();
        PackedQueue second = new PackedQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, PackedQueue.FRESH);
        InflightAttached a = second.attachInflight(region, SIZE);
        assertNull(a.inconsistency());
        assertEquals(0, a.resubmitted(), "the chain put back is not in flight");
        DescriptorChain again = second.pop();
        assertEquals(2L, tokenOf(again));
        // Dies with chain 2 in flight; a third backend resubmits it, puts it back, resubmits it again.
        PackedQueue third = new PackedQueue(0);
        third.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, PackedQueue.FRESH);
        assertEquals(1, third.attachInflight(region, SIZE).resubmitted());
        DescriptorChain r = third.pop();
        third.unpop(r);
        DescriptorChain r2 = third.pop();
        assertEquals(2L, tokenOf(r2));
        assertNull(third.pop());
        third.addUsed(r2, 0);
        third.publishUsed();
        reap();
        assertEquals(List.of(1L, 2L), returned);
    }

    /** Chains put back latest first leave the region as it was: a successor finds only what was really taken. */
    @Test
    void severalChainsPutBackLeaveTheRegionAsBefore() throws Exception {
        PackedQueue first = backend(FRESH);
        add(1, 2, false);
        add(2, 1, false);
        add(3, 3, false);
        DescriptorChain c1 = first.pop();
        DescriptorChain c2 = first.pop();
        DescriptorChain c3 = first.pop();
        first.unpop(c3);
        first.unpop(c2);
        DescriptorChain again = first.pop();
        assertEquals(2L, tokenOf(again));
        first.unpop(again);
        first.addUsed(c1, 0);
        first.publishUsed();
        reap();
        PackedQueue second = new PackedQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, PackedQueue.FRESH);
        InflightAttached a = second.attachInflight(region, SIZE);
        assertNull(a.inconsistency());
        assertEquals(0, a.resubmitted(), "nothing put back is in flight");
        assertEquals(2L, tokenOf(second.pop()));
        assertEquals(3L, tokenOf(second.pop()));
        assertNull(second.pop());
    }

    /** Many laps around a ring with the region attached: every return lands, and a successor finds nothing in flight. */
    @Test
    void manyLapsKeepTheRegionConsistent() throws Exception {
        PackedQueue q = backend(FRESH);
        long token = 1;
        for (int round = 0; round < 200; round++) {
            int n = 1 + round % 3;
            for (int k = 0; k < n; k++) {
                add(token++, 1 + (round + k) % 3, (round + k) % 5 == 0);
            }
            List<DescriptorChain> taken = popAll(q);
            assertEquals(n, taken.size());
            for (int k = taken.size() - 1; k >= 0; k--) {
                q.addUsed(taken.get(k), 0);
                q.publishUsed();
            }
            q.publishUsed();
            reap();
        }
        assertEquals(token - 1, returned.size());
        PackedQueue second = new PackedQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, PackedQueue.FRESH);
        InflightAttached a = second.attachInflight(region, SIZE);
        assertNull(a.inconsistency());
        assertEquals(0, a.resubmitted());
        assertEquals(driver.availState(), second.availState());
        assertEquals(driver.availState(), second.usedState());
    }

    /** A fresh region is laid out as the spec's reconnect steps expect: version 1, the free list, wrap counters 1. */
    @Test
    void aFreshRegionIsInitialized() throws Exception {
        backend(FRESH);
        assertEquals(1, region.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.VERSION_OFF));
        assertEquals(SIZE, region.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.DESC_NUM));
        assertEquals(1, region.get(ValueLayout.JAVA_BYTE, PackedInflight.USED_WRAP));
        assertEquals(1, region.get(ValueLayout.JAVA_BYTE, PackedInflight.OLD_USED_WRAP));
        for (int e = 0; e < SIZE; e++) {
            assertEquals(e + 1, region.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.DESC + 32L * e + PackedInflight.D_NEXT));
        }
    }

    /** What a hostile or careless front-end can leave in the region: each refused, the ring started from its base. */
    @ParameterizedTest
    @ValueSource(strings = {"version", "features", "descNum", "freeHead", "usedIdx", "wrap", "flag", "circle", "num", "outOfRange",
        "last", "id", "idTwice", "counter"})
    void hostileRegionsAreStartedAfresh(String how) throws Exception {
        PackedQueue first = backend(FRESH);
        add(1, 2, false);
        add(2, 1, false);
        add(3, 1, false);
        List<DescriptorChain> taken = popAll(first);
        int h0 = first.inflightTracker().entryOfForTest(taken.get(0).head());
        int h1 = first.inflightTracker().entryOfForTest(taken.get(1).head());
        int h2 = first.inflightTracker().entryOfForTest(taken.get(2).head());
        switch (how) {
            case "version" -> region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.VERSION_OFF, (short) 2);
            case "features" -> region.set(ValueLayout.JAVA_LONG_UNALIGNED, PackedInflight.FEATURES, 1);
            case "descNum" -> region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.DESC_NUM, (short) (SIZE + 1));
            case "freeHead" -> region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_FREE_HEAD, (short) (SIZE + 1));
            case "usedIdx" -> region.set(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_USED_IDX, (short) SIZE);
            case "wrap" -> region.set(ValueLayout.JAVA_BYTE, PackedInflight.OLD_USED_WRAP, (byte) 2);
            case "flag" -> setEntry(h0, PackedInflight.D_INFLIGHT, 2, 1);
            case "circle" -> {
                int fh = region.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.OLD_FREE_HEAD);
                setEntry(fh, PackedInflight.D_NEXT, fh, 2);
            }
            case "num" -> setEntry(h1, PackedInflight.D_NUM, 0, 2);
            case "outOfRange" -> setEntry(h0, PackedInflight.D_NEXT, SIZE + 3, 2);
            case "last" -> setEntry(h0, PackedInflight.D_LAST, h0, 2);
            case "id" -> setEntry(h1, PackedInflight.D_ID, SIZE, 2);
            case "idTwice" -> setEntry(h2, PackedInflight.D_ID, taken.get(1).head(), 2);
            case "counter" -> setEntry(h2, PackedInflight.D_COUNTER, 1, 8);
            default -> fail(how);
        }
        PackedQueue second = new PackedQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, PackedQueue.FRESH);
        InflightAttached a = second.attachInflight(region, SIZE);
        assertNotNull(a.inconsistency(), how + ": refused");
        assertEquals(0, a.resubmitted(), how);
        assertEquals(PackedQueue.FRESH, second.availState(), how + ": the front-end's base");
        assertEquals(1, region.get(ValueLayout.JAVA_SHORT_UNALIGNED, PackedInflight.VERSION_OFF), how + ": started afresh");
        // A fresh region that works: the same ring served from the base again (the chains are re-read).
        assertEquals(3, popAll(second).size(), how);
    }

    void setEntry(int e, long field, long value, int bytes) {
        long off = PackedInflight.DESC + PackedInflight.DESC_SIZE * e + field;
        switch (bytes) {
            case 1 -> region.set(ValueLayout.JAVA_BYTE, off, (byte) value);
            case 2 -> region.set(ValueLayout.JAVA_SHORT_UNALIGNED, off, (short) value);
            default -> region.set(ValueLayout.JAVA_LONG_UNALIGNED, off, value);
        }
    }

    /** The region may be made for more entries than the ring has (the front-end's queue size): tracked the same. */
    @Test
    void aRegionLargerThanTheRing() throws Exception {
        region = Arena.ofAuto().allocate(PackedInflight.queueRegionSize(4 * SIZE), 64);
        PackedQueue first = new PackedQueue(0);
        first.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, -1);
        assertNull(first.attachInflight(region, 4 * SIZE).inconsistency());
        add(1, 3, false);
        add(2, 3, false);
        List<DescriptorChain> taken = popAll(first);
        first.addUsed(taken.get(1), 0);
        first.publishUsed();
        PackedQueue second = new PackedQueue(0);
        second.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, PackedQueue.FRESH, -1);
        InflightAttached a = second.attachInflight(region, 4 * SIZE);
        assertNull(a.inconsistency());
        assertEquals(1, a.resubmitted());
        assertEquals(List.of(1L), popAll(second).stream().map(this::tokenOf).toList());
    }
}
