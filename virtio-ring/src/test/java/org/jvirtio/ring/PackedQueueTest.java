package org.jvirtio.ring;

import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DirtyLog;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.RingViolation.Reason;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.jvirtio.ring.PackedRingLayout.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * What only the packed layout has: descriptors written by hand as a careless or hostile driver
 * would, each refused with its named reason (the queue broken, nothing written, nothing thrown),
 * sizes that are not powers of two, the ring state vhost-user carries, the placement's rules.
 */
class PackedQueueTest {
    private static final long RING = 0x1000;
    private static final long TABLE = 0x20000;
    private static final long DATA = 0x40000;
    private static final long FEATURES = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.INDIRECT_DESC,
            VirtioFeatures.EVENT_IDX, VirtioFeatures.RING_PACKED);

    private GuestMemory memory;
    private final List<RingViolation> violations = new ArrayList<>();

    @BeforeEach
    void setUp() throws Exception {
        memory = TestMemory.memfd(1 << 20);
    }

    @AfterEach
    void tearDown() {
        memory.release();
    }

    private PackedQueue queue(int size, long features, int maxChainBuffers) throws Exception {
        PackedQueue q = new PackedQueue(0, maxChainBuffers);
        q.setViolationListener((queue, v) -> violations.add(v));
        Placement p = place(RING, size);
        q.activate(memory, size, p.desc(), p.driver(), p.device(), features);
        return q;
    }

    private PackedQueue queue(int size) throws Exception {
        return queue(size, FEATURES, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS);
    }

    /** Writes descriptor {@code pos} of the ring at RING as a driver would (flags last). */
    private void desc(int pos, long addr, int len, int id, int flags) {
        long b = RING + (long) pos * DESC_SIZE;
        memory.writeU64(b + DESC_ADDR, addr);
        memory.writeU32(b + DESC_LEN, len);
        memory.writeU16(b + DESC_ID, id);
        memory.writeU16(b + DESC_FLAGS, flags);
    }

    private static int avail(boolean wrap) {
        return availFlags(wrap);
    }

    private void assertBroken(PackedQueue q, Reason reason) {
        assertNull(q.pop(), "nothing popped");
        assertTrue(q.isBroken(), "broken");
        assertEquals(reason, q.violation().reason(), q.violation().message());
        assertEquals(List.of(q.violation()), violations, "the listener heard it once");
        assertNull(q.pop(), "stays broken");
        assertEquals(0, q.available());
    }

    @Test
    void aDescriptorOfAChainThatIsNotAvailableBreaksTheQueue() throws Exception {
        PackedQueue q = queue(8);
        desc(1, DATA, 8, 0, avail(false) | DESC_F_WRITE); // the wrong wrap counter for position 1
        desc(0, DATA, 8, 0, avail(true) | DESC_F_NEXT);
        assertBroken(q, Reason.PACKED_FLAGS);
    }

    @Test
    void aChainAcrossTheEndOfTheRingNeedsTheFlippedWrapCounterThere() throws Exception {
        PackedQueue q = queue(4);
        // Fill and return positions 0-2 so that the next chain starts at 3.
        for (int i = 0; i < 3; i++) {
            desc(i, DATA, 8, i, avail(true));
        }
        for (int i = 0; i < 3; i++) {
            q.addUsed(q.pop(), 0);
        }
        desc(0, DATA + 8, 8, 1, avail(false) | DESC_F_WRITE);
        desc(3, DATA, 8, 1, avail(true) | DESC_F_NEXT);
        DescriptorChain c = q.pop();
        assertNotNull(c, () -> String.valueOf(q.violation()));
        assertEquals(2, c.bufferCount());
        assertEquals(1, c.head());
        assertEquals(offWrap(1, false), q.availState(), "past the end: position 1, wrap counter 0");
        q.addUsed(c, 8);
        assertEquals(offWrap(1, false), q.usedState(), "the used position skips the chain's two descriptors");
        // The same chain whose second descriptor keeps the old wrap counter (NEXT past the end
        // without the wrap): refused.
        PackedQueue r = queue(4);
        violations.clear();
        for (int i = 0; i < 3; i++) {
            desc(i, DATA, 8, i, avail(true));
            r.addUsed(r.pop(), 0);
        }
        desc(0, DATA + 8, 8, 1, avail(true) | DESC_F_WRITE);
        desc(3, DATA, 8, 1, avail(true) | DESC_F_NEXT);
        assertBroken(r, Reason.PACKED_FLAGS);
    }

    @Test
    void aChainOfNextDescriptorsAroundTheWholeRingIsRefusedWithoutLooping() throws Exception {
        PackedQueue q = queue(8);
        for (int i = 7; i >= 0; i--) {
            desc(i, DATA, 8, 0, avail(true) | DESC_F_NEXT);
        }
        assertBroken(q, Reason.CHAIN_LONGER_THAN_RING);
    }

    @Test
    void bufferIdsOutOfRangeOrAlreadyInFlightAreRefused() throws Exception {
        PackedQueue q = queue(8);
        desc(0, DATA, 8, 8, avail(true));
        assertBroken(q, Reason.BUFFER_ID_OUT_OF_RANGE);
        violations.clear();
        PackedQueue r = queue(8);
        desc(0, DATA, 8, 3, avail(true));
        desc(1, DATA, 8, 3, avail(true));
        assertNotNull(r.pop());
        assertBroken(r, Reason.BUFFER_ID_IN_FLIGHT);
    }

    /**
     * A driver that makes available again a position whose buffer is still in flight (the ring
     * wrapped onto it with the flipped wrap counter) would have the used position overtake
     * chains not yet returned: refused, nothing else in flight disturbed.
     */
    @Test
    void aDriverReusingPositionsStillInFlightOverrunsTheRing() throws Exception {
        PackedQueue q = queue(4);
        desc(0, DATA, 8, 0, avail(true) | DESC_F_NEXT);
        desc(1, DATA + 8, 8, 0, avail(true));
        desc(2, DATA + 16, 8, 1, avail(true));
        desc(3, DATA + 24, 8, 2, avail(true));
        DescriptorChain a = q.pop();
        assertNotNull(a);
        assertNotNull(q.pop());
        assertNotNull(q.pop());
        // Nothing used yet, yet the driver offers position 0 again for the next lap.
        desc(0, DATA + 32, 8, 3, avail(false));
        assertBroken(q, Reason.RING_OVERRUN);
        assertEquals(3, q.inFlight(), "the chains in flight stay the device's to return");
    }

    @Test
    void aChainLongerThanTheDeviceAllowsIsRefused() throws Exception {
        PackedQueue q = queue(8, FEATURES, 3);
        for (int i = 3; i >= 0; i--) {
            desc(i, DATA + 16L * i, 8, 0, avail(true) | (i < 3 ? DESC_F_NEXT : 0));
        }
        assertBroken(q, Reason.CHAIN_TOO_LONG);
    }

    @Test
    void indirectDescriptorsStandAlone() throws Exception {
        memory.writeU64(TABLE, DATA);
        memory.writeU32(TABLE + 8, 16);
        // INDIRECT with NEXT.
        PackedQueue q = queue(8);
        desc(0, TABLE, 16, 0, avail(true) | DESC_F_INDIRECT | DESC_F_NEXT);
        assertBroken(q, Reason.INDIRECT_WITH_NEXT);
        // INDIRECT inside a chain linked by NEXT.
        violations.clear();
        q = queue(8);
        desc(1, TABLE, 16, 0, avail(true) | DESC_F_INDIRECT);
        desc(0, DATA, 8, 0, avail(true) | DESC_F_NEXT);
        assertBroken(q, Reason.INDIRECT_IN_CHAIN);
        // INDIRECT without the feature.
        violations.clear();
        q = queue(8, FEATURES & ~VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC), 1024);
        desc(0, TABLE, 16, 0, avail(true) | DESC_F_INDIRECT);
        assertBroken(q, Reason.INDIRECT_NOT_NEGOTIATED);
        // A table entry that is itself INDIRECT.
        violations.clear();
        q = queue(8);
        memory.writeU16(TABLE + DESC_FLAGS, DESC_F_INDIRECT);
        desc(0, TABLE, 16, 0, avail(true) | DESC_F_INDIRECT);
        assertBroken(q, Reason.NESTED_INDIRECT);
        memory.writeU16(TABLE + DESC_FLAGS, 0);
        // A table whose length is not a multiple of 16, and one outside memory.
        violations.clear();
        q = queue(8);
        desc(0, TABLE, 24, 0, avail(true) | DESC_F_INDIRECT);
        assertBroken(q, Reason.INDIRECT_TABLE_LENGTH);
        violations.clear();
        q = queue(8);
        desc(0, (1 << 20) - 16, 32, 0, avail(true) | DESC_F_INDIRECT);
        assertBroken(q, Reason.INDIRECT_TABLE_OUTSIDE_MEMORY);
    }

    @Test
    void anIndirectTableIsReadInOrderWithOnlyItsWriteFlag() throws Exception {
        PackedQueue q = queue(8);
        for (int i = 0; i < 3; i++) {
            long e = TABLE + 16L * i;
            memory.writeU64(e, DATA + 64L * i);
            memory.writeU32(e + 8, 10 + i);
            memory.writeU16(e + DESC_ID, 0x7777); // reserved in a table: ignored
            memory.writeU16(e + DESC_FLAGS, i == 2 ? DESC_F_WRITE | DESC_F_NEXT : 0); // NEXT reserved: ignored
        }
        desc(0, TABLE, 48, 5, avail(true) | DESC_F_INDIRECT);
        DescriptorChain c = q.pop();
        assertNotNull(c, () -> String.valueOf(q.violation()));
        assertEquals(5, c.head());
        assertEquals(3, c.bufferCount());
        assertEquals(21, c.readableLength());
        assertEquals(12, c.writableLength());
        q.addUsed(c, 12);
        assertEquals(offWrap(1, true), q.usedState(), "an indirect chain spans one ring descriptor");
    }

    @Test
    void lengthsThatOverflowAndAddressesOutsideMemoryAreRefused() throws Exception {
        PackedQueue q = queue(8);
        desc(1, DATA, 0xffff_fff0, 0, avail(true) | DESC_F_WRITE);
        desc(0, DATA, 0x20, 0, avail(true) | DESC_F_NEXT);
        assertBroken(q, Reason.LENGTH_OVERFLOW);
        violations.clear();
        q = queue(8);
        desc(0, 1 << 20, 8, 0, avail(true));
        assertBroken(q, Reason.ADDRESS_OUT_OF_RANGE);
    }

    @Test
    void theUsedDescriptorCarriesIdLengthWriteAndTheWrapCounterInOneStore() throws Exception {
        PackedQueue q = queue(2);
        desc(0, DATA, 8, 1, avail(true) | DESC_F_WRITE);
        desc(1, DATA, 8, 0, avail(true));
        DescriptorChain a = q.pop();
        DescriptorChain b = q.pop();
        q.addUsed(b, 0); // out of order: b's used descriptor goes to position 0
        q.addUsed(a, 5);
        long b0 = RING;
        long b1 = RING + DESC_SIZE;
        assertEquals(avail(true) | DESC_F_WRITE, memory.readU16(b0 + DESC_FLAGS), "nothing the driver can see before the publish");
        assertEquals(avail(true), memory.readU16(b1 + DESC_FLAGS));
        q.publishUsed();
        assertEquals(0, memory.readU16(b0 + DESC_ID));
        assertEquals(DESC_F_AVAIL | DESC_F_USED, memory.readU16(b0 + DESC_FLAGS), "used with wrap 1, nothing written");
        assertEquals(1, memory.readU16(b1 + DESC_ID));
        assertEquals(5, memory.readU32(b1 + DESC_LEN));
        assertEquals(DESC_F_AVAIL | DESC_F_USED | DESC_F_WRITE, memory.readU16(b1 + DESC_FLAGS));
        assertEquals(offWrap(0, false), q.usedState(), "the used wrap counter flipped at the end");
        // The next lap: available with wrap 0, used with wrap 0 (both bits clear).
        desc(0, DATA, 8, 0, avail(false) | DESC_F_WRITE);
        DescriptorChain c = q.pop();
        assertNotNull(c);
        q.addUsed(c, 3);
        q.publishUsed();
        assertEquals(DESC_F_WRITE, memory.readU16(b0 + DESC_FLAGS));
    }

    /**
     * Used descriptors are written at the publish (PackedUsedBatch); taking the ring state
     * (vhost-user's GET_VRING_BASE reads {@code usedState()}) or stopping the queue writes those
     * not yet published first, so the state given never points past a used descriptor the
     * driver cannot see.
     */
    @Test
    void usedDescriptorsNotYetPublishedAreWrittenWhenTheStateIsTakenOrTheQueueStops() throws Exception {
        PackedQueue q = queue(4);
        desc(0, DATA, 8, 3, avail(true));
        desc(1, DATA, 8, 2, avail(true));
        q.addUsed(q.pop(), 0);
        assertEquals(avail(true), memory.readU16(RING + DESC_FLAGS), "not yet");
        assertEquals(offWrap(1, true), q.usedState());
        assertEquals(DESC_F_AVAIL | DESC_F_USED, memory.readU16(RING + DESC_FLAGS), "written when the state was taken");
        assertEquals(3, memory.readU16(RING + DESC_ID));
        q.addUsed(q.pop(), 0);
        assertEquals(avail(true), memory.readU16(RING + DESC_SIZE + DESC_FLAGS));
        q.deactivate();
        assertEquals(DESC_F_AVAIL | DESC_F_USED, memory.readU16(RING + DESC_SIZE + DESC_FLAGS), "written when the queue stopped");
        assertEquals(2, memory.readU16(RING + DESC_SIZE + DESC_ID));
        assertFalse(q.publishUsed(), "a stopped queue decides nothing");
    }

    /**
     * A hostile driver that offers a buffer id again before the device published it used (the
     * device released the id at addUsed) can have more chains returned between two publishes
     * than the ring holds: the kept used descriptors are written out when there is no room for
     * another, never an exception, never a write outside the ring.
     */
    @Test
    void moreReturnsThanTheRingHoldsBetweenPublishesAreWrittenOutNotThrown() throws Exception {
        PackedQueue q = queue(4);
        boolean wrap = true;
        for (int i = 0; i < 13; i++) {
            int pos = i % 4;
            if (i > 0 && pos == 0) {
                wrap = !wrap;
            }
            desc(pos, DATA, 8, 0, avail(wrap)); // id 0 every time
            DescriptorChain c = q.pop();
            assertNotNull(c, "pop " + i + ": " + violations);
            q.addUsed(c, 0);
        }
        assertFalse(q.isBroken(), String.valueOf(violations));
        q.publishUsed();
        assertEquals(offWrap(1, false), q.usedState());
    }

    /** A ring that breaks between addUsed and the publish gets nothing more written, as a split ring's unpublished used elements stay unpublished. */
    @Test
    void aRingThatBreaksBeforeThePublishGetsNoUsedDescriptor() throws Exception {
        PackedQueue q = queue(4);
        desc(0, DATA, 8, 0, avail(true));
        q.addUsed(q.pop(), 0);
        desc(1, 1 << 20, 8, 1, avail(true)); // outside guest memory
        assertBroken(q, Reason.ADDRESS_OUT_OF_RANGE);
        assertFalse(q.publishUsed());
        assertEquals(avail(true), memory.readU16(RING + DESC_FLAGS), "nothing written into a broken ring");
    }

    @ParameterizedTest(name = "size {0}")
    @ValueSource(ints = {1, 3, 5, 100, 32768})
    void sizesThatAreNotPowersOfTwoWork(int size) throws Exception {
        GuestMemory big = size > 1000 ? TestMemory.memfd(1 << 20) : memory;
        try {
            PackedQueue q = new PackedQueue(0);
            Placement p = place(RING, size);
            q.activate(big, size, p.desc(), p.driver(), p.device(), FEATURES);
            PackedQueueDriver d = PackedQueueDriver.at(big, RING, size, FEATURES, -1, 0);
            int served = 0;
            for (int i = 0; i < 3 * size + 7 && i < 2000; i++) {
                assertTrue(d.add(new long[] {DATA}, new int[] {8}, 1, 0, i) >= 0);
                d.publish();
                DescriptorChain c = q.pop();
                assertNotNull(c, () -> String.valueOf(q.violation()));
                q.addUsed(c, 8);
                q.publishUsed();
                served += d.pollUsed((h, t, n) -> assertEquals(8, n));
            }
            assertEquals(Math.min(3 * size + 7, 2000), served);
            assertFalse(q.isBroken());
        } finally {
            if (big != memory) {
                big.release();
            }
        }
    }

    @Test
    void thePlacementIsJudgedForTheLayout() {
        assertEquals(Reason.PACKED_SIZE_INVALID, RingGeometry.checkPacked(0, memory, 0, RING, RING + 0x100, RING + 0x104).reason());
        assertEquals(Reason.PACKED_SIZE_INVALID, RingGeometry.checkPacked(0, memory, 32769, RING, RING, RING).reason());
        assertNull(RingGeometry.checkPacked(0, memory, 100, RING, RING + 0x800, RING + 0x804), "100 entries: fine");
        assertEquals(Reason.RING_MISALIGNED, RingGeometry.checkPacked(0, memory, 8, RING + 8, RING + 0x100, RING + 0x104).reason());
        RingViolation v = RingGeometry.checkPacked(0, memory, 8, RING, RING + 0x102, RING + 0x104);
        assertEquals(Reason.RING_MISALIGNED, v.reason());
        assertTrue(v.message().contains("driver area"), v.message());
        v = RingGeometry.checkPacked(0, memory, 8, RING, RING + 0x100, (1 << 20) - 2);
        assertEquals(Reason.RING_MISALIGNED, v.reason(), "the device area misaligned comes first");
        v = RingGeometry.checkPacked(0, memory, 8, RING, RING + 0x100, 1 << 20);
        assertEquals(Reason.RING_OUTSIDE_MEMORY, v.reason());
        assertTrue(v.message().contains("device area"), v.message());
        assertThrows(RingConfigurationException.class, () -> RingGeometry.ofPacked(0, memory, 8, RING, RING + 0x100, 1 << 20));
        assertNull(RingGeometry.check(0, memory, 8, RING, RING + 0x100, RING + 0x200), "the split rules are the split rules");
    }

    /**
     * A device that returns a whole lap of the ring between two interrupt decisions ends where it
     * began, wrap counter flipped: it cannot tell from off_wrap whether the driver's event was
     * passed, so it interrupts. Before, a ring of 4 with 8 descriptors returned between decisions
     * (the driver recycling buffers it took as each was written; now used descriptors are
     * written at the decision) gave no interrupt, and the driver waiting at its event slept for
     * ever (seen as a lost wake-up in RingPingPongTest, size 7, about one run in a hundred).
     */
    @Test
    void aLapReturnedBetweenDecisionsInterruptsTheDriverWaitingInIt() throws Exception {
        PackedQueue q = queue(4);
        PackedQueueDriver d = PackedQueueDriver.at(memory, RING, 4, FEATURES, -1, 0);
        d.add(new long[] {DATA}, new int[] {8}, 1, 1, 0);
        d.publish();
        q.addUsed(q.pop(), 0);
        q.publishUsed(); // a decision
        assertEquals(1, d.pollUsed((h, t, n) -> { }));
        assertFalse(d.enableInterrupts(), "the driver took everything and waits for the next");
        for (int i = 1; i <= 4; i++) {
            d.add(new long[] {DATA}, new int[] {8}, 1, 1, i);
        }
        d.publish();
        for (int i = 1; i <= 4; i++) {
            q.addUsed(q.pop(), 0);
        }
        assertEquals(0, d.pollUsed((h, t, n) -> { }), "nothing visible before the decision");
        assertTrue(q.publishUsed(), "a whole lap returned, the descriptor the driver waits at among them: an interrupt");
        assertEquals(4, d.pollUsed((h, t, n) -> { }));
        // and within a lap the decision is exact again: nothing returned since, no interrupt
        assertFalse(d.enableInterrupts());
        assertFalse(q.publishUsed());
    }

    @Test
    void aStoppedQueueRestartsAtTheStateItGaveWithNothingInFlight() throws Exception {
        PackedQueue q = queue(4);
        PackedQueueDriver d = PackedQueueDriver.at(memory, RING, 4, FEATURES, -1, 0);
        for (int i = 0; i < 6; i++) {
            d.add(new long[] {DATA}, new int[] {8}, 1, 1, i);
            d.publish();
            q.addUsed(q.pop(), 0);
            q.publishUsed();
            d.pollUsed((h, t, n) -> { });
        }
        assertEquals(offWrap(2, false), q.availState());
        assertEquals(offWrap(2, false), q.usedState());
        q.deactivate();
        PackedQueue r = new PackedQueue(0);
        Placement p = place(RING, 4);
        r.activate(memory, 4, p.desc(), p.driver(), p.device(), FEATURES, offWrap(2, false), -1);
        d.add(new long[] {DATA}, new int[] {8}, 1, 1, 99);
        d.publish();
        DescriptorChain c = r.pop();
        assertNotNull(c);
        r.addUsed(c, 0);
        r.publishUsed();
        long[] got = {-1};
        assertEquals(1, d.pollUsed((h, t, n) -> got[0] = t));
        assertEquals(99, got[0]);
    }

    @Test
    void theDirtyLogMarksTheUsedDescriptorTheWrittenBytesAndTheDeviceArea() throws Exception {
        PackedQueue q = queue(8);
        DirtyLog log = new DirtyLog(java.lang.foreign.Arena.ofAuto().allocate(32, 8)); // 256 pages: the whole 1 MiB
        q.setDirtyLog(log);
        desc(0, DATA + 0x2000, 8192, 0, avail(true) | DESC_F_WRITE);
        DescriptorChain c = q.pop();
        q.addUsed(c, 100);
        assertTrue(log.isMarked((DATA + 0x2000) / 4096), "the bytes written, before the driver can see them");
        assertFalse(log.isMarked((DATA + 0x3000) / 4096), "not the bytes not written");
        assertFalse(log.isMarked(RING / 4096), "the used descriptor is not written before the publish");
        q.publishUsed();
        assertTrue(log.isMarked(RING / 4096), "the used descriptor");
        DirtyLog after = new DirtyLog(java.lang.foreign.Arena.ofAuto().allocate(32, 8));
        q.setDirtyLog(after);
        q.enableNotifications();
        assertTrue(after.isMarked(place(RING, 8).device() / 4096), "the device's event suppression");
    }
}
