package org.jvirtio.ring;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.ring.RingViolation.Reason;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import static org.jvirtio.ring.RingFixture.*;
import static org.jvirtio.ring.SplitRingLayout.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A hostile driver's ring states, one per test. Each must break the queue with the named reason,
 * carry the offending values, tell the listener exactly once, and leave the used ring alone.
 */
class HostileRingTest {
    private RingFixture f;

    private RingFixture ring(int size, boolean eventIdx, boolean indirect) throws Exception {
        f = new RingFixture(size, features(eventIdx, indirect));
        return f;
    }

    @AfterEach
    void close() {
        if (f != null) {
            f.close();
        }
    }

    /** Pops, expects the violation, and checks the broken queue stays silent. */
    private RingViolation expectBroken(Reason reason) {
        int usedBefore = f.usedIdx();
        assertNull(f.queue.pop(), "a violating chain is not returned");
        assertTrue(f.queue.isBroken());
        RingViolation v = f.queue.violation();
        assertEquals(reason, v.reason(), v.message());
        assertEquals(1, f.violations.size(), "listener told exactly once");
        assertSame(v, f.violations.get(0));
        // Later calls do nothing and write nothing.
        f.push(0);
        assertNull(f.queue.pop());
        assertFalse(f.queue.publishUsed());
        assertFalse(f.queue.enableNotifications());
        f.queue.disableNotifications();
        assertEquals(usedBefore, f.usedIdx());
        assertEquals(1, f.violations.size());
        assertTrue(v.message().startsWith("queue 0: " + reason), v.message());
        return v;
    }

    @Test
    void headOutOfRange() throws Exception {
        ring(8, false, false).push(8);
        RingViolation v = expectBroken(Reason.HEAD_OUT_OF_RANGE);
        assertEquals(8, v.a());
        assertEquals(8, v.b());
    }

    @Test
    void headAtMaxU16() throws Exception {
        ring(8, false, false).push(0xffff);
        assertEquals(0xffff, expectBroken(Reason.HEAD_OUT_OF_RANGE).a());
    }

    @Test
    void nextOutOfRange() throws Exception {
        ring(8, false, false).desc(0, DATA, 16, DESC_F_NEXT, 9);
        f.push(0);
        RingViolation v = expectBroken(Reason.NEXT_OUT_OF_RANGE);
        assertEquals(9, v.a());
        assertEquals(0, v.c());
    }

    @Test
    void twoDescriptorLoop() throws Exception {
        ring(8, false, false).desc(0, DATA, 16, DESC_F_NEXT, 1);
        f.desc(1, DATA, 16, DESC_F_NEXT, 0);
        f.push(0);
        expectBroken(Reason.DESCRIPTOR_LOOP);
    }

    @Test
    void selfLoop() throws Exception {
        ring(8, false, false).desc(3, DATA, 16, DESC_F_NEXT, 3);
        f.push(3);
        assertEquals(3, expectBroken(Reason.DESCRIPTOR_LOOP).a());
    }

    @Test
    void availIndexTooFarAhead() throws Exception {
        ring(8, false, false).setAvailIdx(9);
        RingViolation v = expectBroken(Reason.AVAIL_INDEX_TOO_FAR);
        assertEquals(9, v.a());
        assertEquals(0, v.b());
    }

    @Test
    void availIndexMovedBackwards() throws Exception {
        ring(8, false, false).setAvailIdx(0xffff); // 65535 entries "ahead" of 0
        assertEquals(0xffff, expectBroken(Reason.AVAIL_INDEX_TOO_FAR).c());
    }

    @Test
    void readableAfterWritable() throws Exception {
        ring(8, false, false).desc(0, DATA, 16, DESC_F_NEXT | DESC_F_WRITE, 1);
        f.desc(1, DATA, 16, 0, 0);
        f.push(0);
        assertEquals(1, expectBroken(Reason.READABLE_AFTER_WRITABLE).a());
    }

    @Test
    void readableAfterWritableInsideIndirectTable() throws Exception {
        ring(8, false, true);
        long table = DATA + 0x1000;
        f.descAt(table, DATA, 16, DESC_F_NEXT | DESC_F_WRITE, 1);
        f.descAt(table + 16, DATA, 16, 0, 0);
        f.desc(0, table, 32, DESC_F_INDIRECT, 0);
        f.push(0);
        expectBroken(Reason.READABLE_AFTER_WRITABLE);
    }

    @Test
    void writableDirectThenReadableIndirect() throws Exception {
        ring(8, false, true);
        long table = DATA + 0x1000;
        f.descAt(table, DATA, 16, 0, 0);
        f.desc(0, DATA, 16, DESC_F_NEXT | DESC_F_WRITE, 1);
        f.desc(1, table, 16, DESC_F_INDIRECT, 0);
        f.push(0);
        expectBroken(Reason.READABLE_AFTER_WRITABLE);
    }

    @Test
    void indirectWithoutTheFeature() throws Exception {
        ring(8, false, false).desc(0, DATA, 16, DESC_F_INDIRECT, 0);
        f.push(0);
        expectBroken(Reason.INDIRECT_NOT_NEGOTIATED);
    }

    @Test
    void indirectTogetherWithNext() throws Exception {
        ring(8, false, true).descAt(DATA, DATA, 16, 0, 0);
        f.desc(0, DATA, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1);
        f.desc(1, DATA, 16, 0, 0);
        f.push(0);
        expectBroken(Reason.INDIRECT_WITH_NEXT);
    }

    @Test
    void nestedIndirect() throws Exception {
        ring(8, false, true);
        long table = DATA + 0x1000;
        f.descAt(table, DATA, 16, DESC_F_NEXT, 1);
        f.descAt(table + 16, table, 32, DESC_F_INDIRECT, 0);
        f.desc(0, table, 32, DESC_F_INDIRECT, 0);
        f.push(0);
        assertEquals(1, expectBroken(Reason.NESTED_INDIRECT).a());
    }

    @Test
    void zeroLengthIndirectTable() throws Exception {
        ring(8, false, true).desc(0, DATA, 0, DESC_F_INDIRECT, 0);
        f.push(0);
        expectBroken(Reason.INDIRECT_TABLE_EMPTY);
    }

    @Test
    void indirectTableLengthNotMultipleOf16() throws Exception {
        ring(8, false, true).desc(0, DATA, 24, DESC_F_INDIRECT, 0);
        f.push(0);
        assertEquals(24, expectBroken(Reason.INDIRECT_TABLE_LENGTH).a());
    }

    @Test
    void indirectTableTooLarge() throws Exception {
        ring(8, false, true).desc(0, DATA, 16 * (MAX_SIZE + 1), DESC_F_INDIRECT, 0);
        f.push(0);
        assertEquals(MAX_SIZE + 1, expectBroken(Reason.INDIRECT_TABLE_TOO_LARGE).a());
    }

    @Test
    void indirectNextOutOfRange() throws Exception {
        ring(8, false, true);
        long table = DATA + 0x1000;
        f.descAt(table, DATA, 16, DESC_F_NEXT, 2);
        f.descAt(table + 16, DATA, 16, 0, 0);
        f.desc(0, table, 32, DESC_F_INDIRECT, 0);
        f.push(0);
        RingViolation v = expectBroken(Reason.INDIRECT_NEXT_OUT_OF_RANGE);
        assertEquals(2, v.a());
        assertEquals(2, v.b());
    }

    @Test
    void indirectLoop() throws Exception {
        ring(8, false, true);
        long table = DATA + 0x1000;
        f.descAt(table, DATA, 16, DESC_F_NEXT, 1);
        f.descAt(table + 16, DATA, 16, DESC_F_NEXT, 0);
        f.desc(0, table, 32, DESC_F_INDIRECT, 0);
        f.push(0);
        expectBroken(Reason.INDIRECT_LOOP);
    }

    @Test
    void indirectTableOutsideMemory() throws Exception {
        ring(8, false, true).desc(0, HIGH + REGION - 16, 32, DESC_F_INDIRECT, 0);
        f.push(0);
        RingViolation v = expectBroken(Reason.INDIRECT_TABLE_OUTSIDE_MEMORY);
        assertEquals(HIGH + REGION - 16, v.a());
    }

    @Test
    void bufferInAHoleOfGuestMemory() throws Exception {
        ring(8, false, false).desc(0, 0x40000, 16, 0, 0);
        f.push(0);
        RingViolation v = expectBroken(Reason.ADDRESS_OUT_OF_RANGE);
        assertEquals(0x40000, v.a());
        assertEquals(16, v.b());
    }

    @Test
    void bufferRunningOffTheEndOfMemory() throws Exception {
        ring(8, false, false).desc(0, HIGH + REGION - 0x100, 0x200, DESC_F_WRITE, 0);
        f.push(0);
        expectBroken(Reason.ADDRESS_OUT_OF_RANGE);
    }

    @Test
    void bufferWrappingAround2To64() throws Exception {
        ring(8, false, false).desc(0, -16L, 32, 0, 0);
        f.push(0);
        assertEquals(-16L, expectBroken(Reason.ADDRESS_OUT_OF_RANGE).a());
    }

    @Test
    void bufferBelowGuestMemory() throws Exception {
        ring(8, false, false).desc(0, 0, 8, 0, 0);
        f.push(0);
        expectBroken(Reason.ADDRESS_OUT_OF_RANGE);
    }

    @Test
    void repeatedHeadsExceedTheChainPool() throws Exception {
        ring(4, false, false).desc(0, DATA, 16, 0, 0);
        for (int i = 0; i < 4; i++) {
            f.push(0);
            assertNotNull(f.queue.pop());
        }
        f.push(0);
        RingViolation v = expectBroken(Reason.TOO_MANY_IN_FLIGHT);
        assertEquals(4, v.b());
    }

    @Test
    void chainLongerThanTheDeviceAccepts() throws Exception {
        ring(8, false, false);
        SplitQueue q = new SplitQueue(0, 4);
        q.setViolationListener((x, v) -> f.violations.add(v));
        q.activate(f.memory, 8, f.ring.desc(), f.ring.avail(), f.ring.used(), features(false, false), 0, 0);
        for (int i = 0; i < 5; i++) {
            f.desc(i, DATA + 16L * i, 16, i < 4 ? DESC_F_NEXT : 0, i + 1);
        }
        f.push(0);
        assertNull(q.pop());
        assertEquals(Reason.CHAIN_TOO_LONG, q.violation().reason());
        assertEquals(4, q.violation().b());
    }

    @Test
    void bufferSplitAcrossRegionsCountsTowardsTheLimit() throws Exception {
        ring(8, false, false);
        SplitQueue q = new SplitQueue(0, 1);
        q.activate(f.memory, 8, f.ring.desc(), f.ring.avail(), f.ring.used(), features(false, false), 0, 0);
        f.desc(0, HIGH - 8, 16, 0, 0); // one descriptor, two regions -> two buffers
        f.push(0);
        assertNull(q.pop());
        assertEquals(Reason.CHAIN_TOO_LONG, q.violation().reason());
    }

    @Test
    void lengthsOverflowingU32() throws Exception {
        RingViolation v = twoDescriptorsOver4GiB(0xffff_ffffL, 0, 2, 0);
        assertEquals(Reason.LENGTH_OVERFLOW, v.reason());
        assertEquals(0x1_0000_0001L, v.a());
    }

    /**
     * Pops one chain of two descriptors of the given lengths and flags, both at guest address 0
     * of a 4 GiB sparse memfd (the ring above 4 GiB: regions past 2 GiB work too); returns the
     * violation it caused.
     */
    private static RingViolation twoDescriptorsOver4GiB(long len0, int flags0, long len1, int flags1) throws Exception {
        long big = 0x1_0000_0000L + 0x10000;
        GuestMemory mem = TestMemory.memfd(big);
        try {
            SplitQueue q = new SplitQueue(0);
            SplitRingLayout.Placement p = SplitRingLayout.place(0x1_0000_0000L, 8);
            q.activate(mem, 8, p.desc(), p.avail(), p.used(), features(false, false), 0, 0);
            long d = p.desc();
            mem.writeU64(d, 0);
            mem.writeU32(d + 8, len0);
            mem.writeU16(d + 12, DESC_F_NEXT | flags0);
            mem.writeU16(d + 14, 1);
            mem.writeU64(d + 16, 0);
            mem.writeU32(d + 24, len1);
            mem.writeU16(d + 28, flags1);
            mem.writeU16(p.avail() + 4, 0);
            mem.writeU16(p.avail() + 2, 1);
            assertNull(q.pop());
            return q.violation();
        } finally {
            mem.release();
        }
    }

    @Test
    void brokenQueueWritesNoUsedElementForChainsStillInFlight() throws Exception {
        ring(8, false, false).desc(0, DATA, 16, DESC_F_WRITE, 0);
        f.push(0);
        DescriptorChain ok = f.queue.pop();
        assertNotNull(ok);
        f.push(8);
        assertNull(f.queue.pop());
        f.queue.addUsed(ok, 16); // returns the chain to the pool, writes nothing
        assertFalse(f.queue.publishUsed());
        assertEquals(0, f.usedIdx());
        assertEquals(0, f.queue.inFlight());
    }

    // ---- configuration ----

    private void expectConfig(Reason reason, int size, long desc, long avail, long used) {
        SplitQueue q = f.queue;
        RingConfigurationException e = assertThrows(RingConfigurationException.class,
                () -> q.activate(f.memory, size, desc, avail, used, features(true, true), 0, 0));
        assertEquals(reason, e.violation().reason(), e.getMessage());
        assertFalse(q.isActive(), "a refused configuration leaves the queue inactive");
        assertNull(q.pop());
    }

    @Test
    void sizeNotAPowerOfTwoOrTooLarge() throws Exception {
        ring(8, false, false);
        var p = f.ring;
        expectConfig(Reason.SIZE_INVALID, 3, p.desc(), p.avail(), p.used());
        expectConfig(Reason.SIZE_INVALID, 0, p.desc(), p.avail(), p.used());
        expectConfig(Reason.SIZE_INVALID, 65536, p.desc(), p.avail(), p.used());
        expectConfig(Reason.SIZE_INVALID, -8, p.desc(), p.avail(), p.used());
    }

    @Test
    void misalignedRingParts() throws Exception {
        ring(8, false, false);
        var p = f.ring;
        expectConfig(Reason.RING_MISALIGNED, 8, p.desc() + 8, p.avail(), p.used());
        expectConfig(Reason.RING_MISALIGNED, 8, p.desc(), p.avail() + 1, p.used());
        RingConfigurationException e = assertThrows(RingConfigurationException.class,
                () -> f.queue.activate(f.memory, 8, p.desc(), p.avail(), p.used() + 2, 0, 0, 0));
        assertTrue(e.getMessage().contains("used ring"), e.getMessage());
    }

    @Test
    void ringPartsOutsideOrAcrossRegions() throws Exception {
        ring(8, false, false);
        var p = f.ring;
        expectConfig(Reason.RING_OUTSIDE_MEMORY, 8, 0x40000, p.avail(), p.used());
        expectConfig(Reason.RING_OUTSIDE_MEMORY, 8, p.desc(), HIGH - 8, p.used());
        expectConfig(Reason.RING_OUTSIDE_MEMORY, 8, p.desc(), p.avail(), HIGH + REGION - 16);
        // a larger size makes a once-valid geometry run past the region: validated again
        expectConfig(Reason.RING_OUTSIDE_MEMORY, 32768, p.desc(), p.avail(), p.used());
    }

    /** A memory change is a new activation (the transport stops the ring first): validated again. */
    @Test
    void memoryChangeThatDropsTheRingIsRefused() throws Exception {
        ring(8, false, false);
        MemoryMapping m = MemoryMapping.memfd("elsewhere", REGION);
        GuestMemory other = GuestMemory.of(GuestRegion.of(0x100000, m));
        m.release();
        try {
            f.queue.deactivate();
            var p = f.ring;
            RingConfigurationException e = assertThrows(RingConfigurationException.class,
                    () -> f.queue.activate(other, 8, p.desc(), p.avail(), p.used(), 0, 0, -1));
            assertEquals(Reason.RING_OUTSIDE_MEMORY, e.violation().reason());
            assertFalse(f.queue.isActive());
            assertEquals(e.violation().reason(), SplitQueue.checkGeometry(0, other, 8, p.desc(), p.avail(), p.used()).reason());
            assertNull(SplitQueue.checkGeometry(0, f.memory, 8, p.desc(), p.avail(), p.used()));
        } finally {
            other.release();
        }
    }

    /** An 8-entry ring in a memfd the test can shrink under it, as a front-end can. */
    private static final class ShrinkableRing implements AutoCloseable {
        final int fd;
        final GuestMemory mem;
        final SplitRingLayout.Placement p = SplitRingLayout.place(0, 8);
        final SplitQueue q = new SplitQueue(0);
        final java.util.List<RingViolation> seen = new java.util.ArrayList<>();

        ShrinkableRing() throws Exception {
            fd = org.jvirtio.api.linux.Libc.memfdCreate("shrinks");
            org.jvirtio.api.linux.Libc.ftruncate(fd, REGION);
            MemoryMapping m = MemoryMapping.map(fd, 0, REGION);
            mem = GuestMemory.of(GuestRegion.of(0, m));
            m.release();
            q.setViolationListener((queue, v) -> seen.add(v));
            q.activate(mem, 8, p.desc(), p.avail(), p.used(), RingFixture.features(false, false), 0, 0);
        }

        void shrink() throws Exception {
            org.jvirtio.api.linux.Libc.ftruncate(fd, 0);
        }

        @Override
        public void close() throws Exception {
            mem.release();
            org.jvirtio.api.linux.Libc.close(fd);
        }
    }

    /**
     * Issue 14, item 1 (failed before: the SIGBUS of a truncated guest-memory file came out of
     * pop() as an InternalError and ended the queue's thread): a fault touching guest memory
     * breaks the ring with a named reason, and nothing throws.
     */
    @Test
    void guestMemoryThatFaultsBreaksTheRingInsteadOfThrowing() throws Exception {
        try (ShrinkableRing r = new ShrinkableRing()) {
            SplitQueue q = r.q;
            r.mem.writeU64(r.p.desc(), 0x4000);
            r.mem.writeU32(r.p.desc() + 8, 64);
            r.mem.writeU16(r.p.avail() + 4, 0);
            r.mem.writeU16(r.p.avail() + 2, 1);
            var chain = q.pop();
            assertNotNull(chain);
            r.shrink(); // the front-end shrinks the file
            q.addUsed(chain, 0);
            assertFalse(q.publishUsed());
            assertNull(q.pop());
            assertFalse(q.enableNotifications());
            q.disableNotifications();
            assertTrue(q.isBroken());
            assertEquals(Reason.MEMORY_FAULT, q.violation().reason());
            assertEquals(1, r.seen.size(), "the listener hears it once");
            assertEquals(0, q.inFlight(), "the chain went back to the pool");
        }
    }

    /**
     * The same fault met by available() (the queue engine's look at the ring while it polls, with
     * no chain popped): the ring breaks with the same reason, available() answers 0 and nothing
     * throws. Without the catch the InternalError of the SIGBUS came out of available().
     */
    @Test
    void guestMemoryThatFaultsWhileLookingForWorkBreaksTheRing() throws Exception {
        try (ShrinkableRing r = new ShrinkableRing()) {
            SplitQueue q = r.q;
            assertEquals(0, q.available(), "an empty ring");
            r.shrink(); // the front-end shrinks the file
            assertEquals(0, q.available());
            assertTrue(q.isBroken());
            assertEquals(Reason.MEMORY_FAULT, q.violation().reason());
            assertEquals(1, r.seen.size(), "the listener hears it once");
            assertEquals(0, q.available(), "a broken ring offers nothing");
            assertNull(q.pop());
            assertEquals(1, r.seen.size());
        }
    }

    /**
     * Issue 14, item 5 (failed before: alignment was checked on guest addresses only, so a region
     * mapped at an odd mmap_offset made pop() throw IllegalArgumentException from the 16-bit
     * VarHandle, ending a QueueWorker's thread silently): activation refuses the ring by name.
     */
    @Test
    void ringsAtOddHostAddressesAreRefusedAtActivation() throws Exception {
        int fd = org.jvirtio.api.linux.Libc.memfdCreate("odd");
        org.jvirtio.api.linux.Libc.ftruncate(fd, REGION + 4096);
        MemoryMapping m = MemoryMapping.map(fd, 1, REGION); // mmap_offset 1: host address = page + 1
        GuestMemory mem = GuestMemory.of(GuestRegion.of(0, m));
        m.release();
        try {
            SplitRingLayout.Placement p = SplitRingLayout.place(0, 8);
            SplitQueue q = new SplitQueue(0);
            RingConfigurationException e = assertThrows(RingConfigurationException.class,
                    () -> q.activate(mem, 8, p.desc(), p.avail(), p.used(), 0, 0, 0));
            assertEquals(Reason.RING_HOST_MISALIGNED, e.violation().reason());
            assertTrue(e.getMessage().contains("available ring is at host address"), e.getMessage());
            assertFalse(q.isActive());
            assertNull(q.pop());
        } finally {
            mem.release();
            org.jvirtio.api.linux.Libc.close(fd);
        }
    }

    /**
     * Issue 14, item 9 (each failed before): activating a ring with chains in flight is refused
     * before anything changes (it used to overwrite the geometry, then throw, and those chains'
     * completions were dropped); a used length above the chain's writable bytes is refused; a
     * guest-chosen readBytes length is checked before anything is allocated.
     */
    @Test
    void ringApiHazardsAreRefusedBeforeAnythingChanges() throws Exception {
        ring(8, false, false).desc(0, DATA, 16, DESC_F_WRITE, 0);
        f.push(0);
        var chain = f.queue.pop();
        assertNotNull(chain);
        var p = f.ring;
        assertThrows(IllegalStateException.class,
                () -> f.queue.activate(f.memory, 8, p.desc(), p.avail() + 0x100, p.used() + 0x100, 0, 0, 0));
        assertTrue(f.queue.isActive(), "still active with the old geometry");
        assertThrows(IllegalArgumentException.class, () -> f.queue.addUsed(chain, 17), "16 writable bytes, 17 claimed");
        assertEquals(1, f.queue.inFlight(), "the refused addUsed changed nothing");
        assertThrows(org.jvirtio.api.ChainUnderflowException.class, () -> chain.reader().readBytes(-1));
        assertThrows(org.jvirtio.api.ChainUnderflowException.class, () -> chain.reader().readBytes(Integer.MAX_VALUE));
        f.queue.addUsed(chain, 16);
        f.queue.publishUsed();
        assertEquals(1, f.usedIdx(), "the chain came back on the old ring");
        assertEquals(16, f.memory.readU32(p.used() + 4 + 4));
    }

    /** VIRTIO 1.3, 2.7.5.1: readable and writable bytes together stay below 2^32 (issue 14, item 9). */
    @Test
    void theWholeChainsLengthIsLimitedNotEachSide() throws Exception {
        // readable 2^32 - 2^16 and writable 2^16: each side fits 32 bits, the chain does not
        assertEquals(Reason.LENGTH_OVERFLOW, twoDescriptorsOver4GiB(0xffff_0000L, 0, 0x10000, DESC_F_WRITE).reason());
    }
}
