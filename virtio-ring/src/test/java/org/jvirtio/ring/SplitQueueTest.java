package org.jvirtio.ring;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.ChainReader;
import org.jvirtio.api.ChainUnderflowException;
import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.DescriptorChain;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import static org.jvirtio.ring.RingFixture.*;
import static org.jvirtio.ring.SplitRingLayout.*;
import static org.junit.jupiter.api.Assertions.*;

class SplitQueueTest {
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

    @Test
    void popsADirectChainAndPublishesItsUsedElement() throws Exception {
        ring(8, false, false);
        f.memory.writeU64(DATA, 0x0807060504030201L);
        f.desc(2, DATA, 8, DESC_F_NEXT, 5);
        f.desc(5, DATA + 0x100, 4, DESC_F_WRITE | DESC_F_NEXT, 6);
        f.desc(6, DATA + 0x200, 1, DESC_F_WRITE, 0);
        f.push(2);
        DescriptorChain c = f.queue.pop();
        assertNotNull(c);
        assertEquals(2, c.head());
        assertEquals(1, c.readableBufferCount());
        assertEquals(2, c.writableBufferCount());
        assertEquals(8, c.readableLength());
        assertEquals(5, c.writableLength());
        assertEquals(0x0807060504030201L, c.reader().readU64());
        ChainWriter w = c.writer();
        w.writeU32(0xdeadbeefL);
        w.writeU8(7);
        assertEquals(0, w.remaining());
        assertThrows(ChainUnderflowException.class, () -> w.writeU8(1));
        assertEquals(0xdeadbeefL, f.memory.readU32(DATA + 0x100));
        assertEquals(7, f.memory.readU8(DATA + 0x200));
        assertNull(f.queue.pop(), "ring empty");
        assertEquals(1, f.queue.inFlight());
        f.queue.addUsed(c, 5);
        assertEquals(0, f.usedIdx(), "not visible before publish");
        assertTrue(f.queue.publishUsed());
        assertEquals(1, f.usedIdx());
        assertEquals(2, f.usedElemId(0));
        assertEquals(5, f.usedElemLen(0));
        assertEquals(0, f.queue.inFlight());
        assertThrows(IllegalStateException.class, () -> f.queue.addUsed(c, 0), "a chain is returned once");
    }

    /**
     * A chain the device turns away goes back untaken: the next pop walks the same head again,
     * the avail index the queue reports steps back, and only the last chain popped, before
     * anything else happens to it, can be put back.
     */
    @Test
    void theLastChainPoppedCanBePutBackAndComesAgain() throws Exception {
        ring(8, true, false);
        f.desc(0, DATA, 16, 0, 0);
        f.desc(1, DATA + 0x100, 16, DESC_F_WRITE, 0);
        f.desc(2, DATA + 0x200, 16, DESC_F_WRITE, 0);
        f.push(0);
        f.push(1);
        f.push(2);
        DescriptorChain a = f.queue.pop();
        DescriptorChain b = f.queue.pop();
        assertEquals(2, f.queue.nextAvail());
        assertThrows(IllegalStateException.class, () -> f.queue.unpop(a), "not the last one popped");
        assertEquals(2, f.queue.inFlight(), "nothing changed");
        f.queue.unpop(b);
        assertEquals(1, f.queue.nextAvail(), "the avail index steps back");
        assertEquals(1, f.queue.inFlight());
        assertEquals(2, f.queue.available(), "heads 1 and 2 are available again");
        assertThrows(IllegalStateException.class, () -> f.queue.unpop(b), "put back once");
        DescriptorChain b2 = f.queue.pop();
        assertEquals(1, b2.head(), "the same head, walked again");
        assertEquals(16, b2.writableLength());
        f.queue.addUsed(b2, 4);
        assertThrows(IllegalStateException.class, () -> f.queue.unpop(b2), "a used chain cannot come back");
        DescriptorChain c = f.queue.pop();
        assertEquals(2, c.head());
        f.queue.unpop(c);
        f.queue.addUsed(a, 0);
        assertTrue(f.queue.publishUsed());
        assertEquals(2, f.usedIdx());
        assertEquals(1, f.usedElemId(0));
        assertEquals(0, f.usedElemId(1));
        assertEquals(2, f.queue.nextAvail(), "what a stop (GET_VRING_BASE) reports: head 2 is still the driver's");
        assertTrue(f.queue.enableNotifications(), "head 2 is still available: the caller must pop again");
        f.queue.deactivate();
        assertThrows(IllegalStateException.class, () -> f.queue.unpop(c));
    }

    @Test
    void bufferCrossingRegionsBecomesTwoSegments() throws Exception {
        ring(8, false, false);
        byte[] data = new byte[0x200];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 7);
        }
        f.memory.write(HIGH - 0x100, MemorySegment.ofArray(data));
        f.desc(0, HIGH - 0x100, 0x200, 0, 0);
        f.push(0);
        DescriptorChain c = f.queue.pop();
        assertEquals(2, c.bufferCount());
        assertEquals(0x100, c.bufferLength(0));
        assertEquals(0x100, c.bufferLength(1));
        assertEquals(f.memory.regionSegment(1).address(), c.bufferAddress(1));
        assertArrayEquals(data, c.reader().readBytes(0x200));
    }

    @Test
    void buffersAlternatingBetweenRegionsTranslateEachTime() throws Exception {
        ring(8, false, false);
        long[] at = {HIGH + 0x10, DATA, HIGH + 0x20, DATA + 0x10, HIGH - 4};
        for (int i = 0; i < at.length; i++) {
            f.memory.writeU64(at[i], 0x1111L * (i + 1));
            f.desc(i, at[i], 8, i + 1 < at.length ? DESC_F_NEXT : 0, i + 1);
        }
        f.push(0);
        DescriptorChain c = f.queue.pop();
        assertEquals(6, c.bufferCount(), "the last buffer crosses into the high region");
        ChainReader r = c.reader();
        for (int i = 0; i < at.length; i++) {
            assertEquals(0x1111L * (i + 1), r.readU64());
        }
        assertEquals(f.memory.regionSegment(1).address() + 0x10, c.bufferAddress(0));
        assertEquals(f.memory.regionSegment(0).address() + (DATA - LOW), c.bufferAddress(1));
    }

    @Test
    void bufferStartingInTheLastUsedRegionButRunningPastMemory() throws Exception {
        ring(8, false, false);
        f.desc(0, HIGH + 0x100, 8, DESC_F_NEXT, 1);
        f.desc(1, HIGH + REGION - 4, 8, 0, 0);
        f.push(0);
        assertNull(f.queue.pop());
        assertEquals(RingViolation.Reason.ADDRESS_OUT_OF_RANGE, f.queue.violation().reason());
    }

    @Test
    void headerSplitIntoOneByteDescriptorsReadsTheSame() throws Exception {
        // A virtio-blk style header (le32 type, le32 reserved, le64 sector) in 16 descriptors.
        ring(32, false, false);
        byte[] header = {1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, (byte) 0x80};
        for (int i = 0; i < 16; i++) {
            f.memory.writeU8(DATA + 0x40L * i, header[i]);
            f.desc(i, DATA + 0x40L * i, 1, DESC_F_NEXT, i + 1);
        }
        f.desc(16, DATA + 0x1000, 1, DESC_F_WRITE, 0); // status byte
        f.push(0);
        DescriptorChain c = f.queue.pop();
        assertEquals(16, c.readableBufferCount());
        ChainReader r = c.reader();
        assertEquals(1, r.readU32());
        assertEquals(0, r.readU32());
        assertEquals(0x8070605040302010L, r.readU64());
        assertEquals(0, r.remaining());
        assertThrows(ChainUnderflowException.class, r::readU8);
        c.writer().writeU8(0);
    }

    @Test
    void headerWithFieldsStraddlingBuffersOfOddSizes() throws Exception {
        ring(8, false, false);
        // 3 + 5 + 8 bytes; every multi-byte field straddles a boundary somewhere
        long[] at = {DATA, HIGH - 5, DATA + 0x300};
        int[] len = {3, 5, 8};
        byte[] bytes = new byte[16];
        for (int i = 0; i < 16; i++) {
            bytes[i] = (byte) (0xa0 + i);
        }
        int k = 0;
        for (int d = 0; d < 3; d++) {
            for (int i = 0; i < len[d]; i++) {
                f.memory.writeU8(at[d] + i, bytes[k++]);
            }
            f.desc(d, at[d], len[d], d < 2 ? DESC_F_NEXT : 0, d + 1);
        }
        f.push(0);
        DescriptorChain c = f.queue.pop();
        ChainReader r = c.reader();
        assertEquals(0xa3a2a1a0L, r.readU32());
        assertEquals(0xa5a4, r.readU16());
        r.skip(1);
        assertEquals(0xaeadacabaaa9a8a7L, r.readU64());
        assertEquals(0xaf, r.readU8());
        assertEquals(1, c.reader().readU8() >>> 7, "reader() rewinds");
    }

    @Test
    void indirectTableInsideOneRegion() throws Exception {
        ring(8, false, true);
        long table = DATA + 0x1000;
        f.memory.writeU32(DATA, 0x11223344L);
        f.descAt(table, DATA, 4, DESC_F_NEXT, 1);
        f.descAt(table + 16, DATA + 0x100, 512, DESC_F_WRITE | DESC_F_NEXT, 2);
        f.descAt(table + 32, DATA + 0x400, 1, DESC_F_WRITE, 0);
        f.desc(4, table, 48, DESC_F_INDIRECT | DESC_F_WRITE /* ignored */, 0);
        f.push(4);
        DescriptorChain c = f.queue.pop();
        assertEquals(4, c.head());
        assertEquals(3, c.bufferCount());
        assertEquals(4, c.readableLength());
        assertEquals(513, c.writableLength());
        assertEquals(0x11223344L, c.reader().readU32());
    }

    /**
     * Issue 14, item 9: a guest that sends every chain at the longest length (here 256 chains
     * through one shared indirect table of 1024 buffers) no longer leaves the pool holding 16
     * bytes per buffer for all of them: what the pool keeps grown is bounded, and short chains
     * afterwards still need no allocation.
     */
    @Test
    void whatTheChainPoolKeepsIsBoundedAfterAFloodOfLongestChains() throws Exception {
        ring(256, false, true);
        long table = HIGH;
        for (int i = 0; i < 1024; i++) {
            f.descAt(table + 16L * i, DATA, 1, DESC_F_WRITE | (i < 1023 ? DESC_F_NEXT : 0), i + 1);
        }
        f.desc(0, table, 16 * 1024, DESC_F_INDIRECT, 0);
        for (int round = 0; round < 2; round++) {
            java.util.List<DescriptorChain> chains = new java.util.ArrayList<>();
            for (int i = 0; i < 256; i++) {
                f.push(0);
            }
            DescriptorChain c;
            while ((c = f.queue.pop()) != null) {
                assertEquals(1024, c.bufferCount());
                chains.add(c);
            }
            assertEquals(256, chains.size());
            for (DescriptorChain done : chains) {
                f.queue.addUsed(done, 1);
            }
            f.queue.publishUsed();
            assertTrue(f.queue.retainedBuffers() <= SplitQueue.RETAINED_BUFFERS,
                    "round " + round + ": the pool keeps " + f.queue.retainedBuffers() + " buffer entries");
        }
        assertTrue(f.violations.isEmpty(), f.violations.toString());
    }

    @Test
    void directDescriptorsFollowedByAnIndirectTable() throws Exception {
        ring(8, false, true);
        long table = DATA + 0x1000;
        f.descAt(table, DATA + 0x100, 8, DESC_F_WRITE, 0);
        f.desc(0, DATA, 16, DESC_F_NEXT, 1);
        f.desc(1, table, 16, DESC_F_INDIRECT, 0);
        f.push(0);
        DescriptorChain c = f.queue.pop();
        assertEquals(16, c.readableLength());
        assertEquals(8, c.writableLength());
    }

    @Test
    void indirectTableCrossingARegionBoundary() throws Exception {
        ring(8, false, true);
        // 3 entries starting 8 bytes before the boundary: entry 0 itself straddles it.
        long table = HIGH - 8;
        f.memory.writeU64(DATA, 0x0102030405060708L);
        f.descAt(table, DATA, 8, DESC_F_NEXT, 1);
        f.descAt(table + 16, HIGH + 0x100, 16, DESC_F_NEXT | DESC_F_WRITE, 2);
        f.descAt(table + 32, HIGH + 0x200, 1, DESC_F_WRITE, 0);
        f.desc(0, table, 48, DESC_F_INDIRECT, 0);
        f.push(0);
        DescriptorChain c = f.queue.pop();
        assertNotNull(c, () -> String.valueOf(f.queue.violation()));
        assertEquals(3, c.bufferCount());
        assertEquals(0x0102030405060708L, c.reader().readU64());
        assertEquals(17, c.writableLength());
    }

    @Test
    void zeroLengthDescriptorsAreSkipped() throws Exception {
        ring(8, false, false);
        f.desc(0, DATA, 0, DESC_F_NEXT, 1);
        f.desc(1, DATA, 4, DESC_F_WRITE, 0);
        f.push(0);
        DescriptorChain c = f.queue.pop();
        assertEquals(1, c.bufferCount());
        assertEquals(0, c.readableLength());
    }

    @Test
    void indicesWrapAround65535() throws Exception {
        ring(8, false, false);
        f.queue.activate(f.memory, 8, f.ring.desc(), f.ring.avail(), f.ring.used(), features(false, false), 65530, 65530);
        f.availIdx = 65530;
        f.setAvailIdx(65530);
        f.memory.writeU16(f.ring.used() + 2, 65530);
        for (int i = 0; i < 8; i++) {
            f.desc(i, DATA + 32L * i, 32, DESC_F_WRITE, 0); // room for the used lengths below (up to 19)
        }
        for (int round = 0; round < 20; round++) {
            f.push(round % 8);
            DescriptorChain c = f.queue.pop();
            assertNotNull(c, "round " + round);
            assertEquals(round % 8, c.head());
            f.queue.addUsed(c, round);
            f.queue.publishUsed();
            int expectedIdx = (65530 + round + 1) & 0xffff;
            assertEquals(expectedIdx, f.usedIdx());
            int slot = (65530 + round) % 8;
            assertEquals(round % 8, f.usedElemId(slot));
            assertEquals(round, f.usedElemLen(slot));
        }
        assertEquals(14, f.queue.nextAvail());
        assertEquals(14, f.queue.nextUsed());
        assertFalse(f.queue.isBroken());
    }

    @Test
    void fullRingAcrossTheWrap() throws Exception {
        ring(8, false, false);
        f.queue.activate(f.memory, 8, f.ring.desc(), f.ring.avail(), f.ring.used(), features(false, false), 65532, 65532);
        f.availIdx = 65532;
        for (int i = 0; i < 8; i++) {
            f.desc(i, DATA, 16, 0, 0);
            f.push(i);
        }
        DescriptorChain[] batch = new DescriptorChain[16];
        int n = 0;
        for (DescriptorChain c; (c = f.queue.pop()) != null; ) {
            batch[n++] = c;
        }
        assertEquals(8, n, "exactly size entries ahead is legal");
        for (int i = 0; i < 8; i++) {
            f.queue.addUsed(batch[i], 0);
        }
        f.queue.publishUsed();
        assertEquals(4, f.usedIdx());
    }

    @Test
    void needEventArithmetic() {
        // vring_need_event(event, new, old): did [old, new) pass event?
        assertTrue(needEvent(0, 1, 0));
        assertFalse(needEvent(1, 1, 0), "event 1 is crossed only when new > 1");
        assertTrue(needEvent(1, 2, 0));
        assertFalse(needEvent(5, 3, 0));
        assertTrue(needEvent(0xffff, 0, 0xfffe), "wrap: 0xffff crossed going from 0xfffe to 0");
        assertTrue(needEvent(0xfffe, 2, 0xfff0));
        assertFalse(needEvent(3, 2, 0xfff0));
        assertFalse(needEvent(0, 5, 5), "nothing moved");
        assertTrue(needEvent(0x100, 0x8003, 0x13), "large jumps still compare modulo 2^16");
        assertFalse(needEvent(2, 0x8003, 0x13));
    }

    @Test
    void eventIdxSuppressesInterruptsUntilUsedEventIsPassed() throws Exception {
        ring(8, true, false);
        for (int i = 0; i < 4; i++) {
            f.desc(i, DATA, 16, DESC_F_WRITE, 0);
        }
        long usedEvent = f.ring.avail() + availUsedEventOffset(8);
        f.memory.writeU16(usedEvent, 2); // interrupt me when used->idx passes 2
        List<Boolean> irq = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            f.push(i);
            DescriptorChain c = f.queue.pop();
            f.queue.addUsed(c, 0);
            irq.add(f.queue.publishUsed());
        }
        // first check always signals (no previous value), then only the move 2 -> 3 crosses
        assertEquals(List.of(true, false, true, false), irq);
    }

    @Test
    void noInterruptFlagWithoutEventIdx() throws Exception {
        ring(8, false, false);
        f.desc(0, DATA, 16, DESC_F_WRITE, 0);
        f.memory.writeU16(f.ring.avail(), AVAIL_F_NO_INTERRUPT);
        f.push(0);
        f.queue.addUsed(f.queue.pop(), 0);
        assertFalse(f.queue.publishUsed());
        f.memory.writeU16(f.ring.avail(), 0);
        f.push(0);
        f.queue.addUsed(f.queue.pop(), 0);
        assertTrue(f.queue.publishUsed());
    }

    @Test
    void notificationControlWritesTheRightField() throws Exception {
        ring(8, false, false);
        f.queue.disableNotifications();
        assertEquals(USED_F_NO_NOTIFY, f.memory.readU16(f.ring.used()));
        assertFalse(f.queue.enableNotifications());
        assertEquals(0, f.memory.readU16(f.ring.used()));
        f.close();
        ring(8, true, false);
        f.desc(0, DATA, 16, 0, 0);
        f.push(0);
        f.push(0);
        f.queue.disableNotifications();
        assertNotNull(f.queue.pop());
        long availEvent = f.ring.used() + usedAvailEventOffset(8);
        assertTrue(f.queue.enableNotifications(), "one entry still unpopped");
        assertNotNull(f.queue.pop());
        assertFalse(f.queue.enableNotifications());
        assertEquals(2, f.memory.readU16(availEvent), "kick me when entry 2 is added");
    }

    @Test
    void enableNotificationsSeesEntriesAddedWhileDisabled() throws Exception {
        ring(8, true, false);
        f.desc(0, DATA, 16, 0, 0);
        f.queue.disableNotifications();
        assertNull(f.queue.pop());
        f.push(0); // the driver adds without kicking (avail_event is stale)
        assertTrue(f.queue.enableNotifications(), "the re-check after the fence finds it");
        assertNotNull(f.queue.pop());
    }

    @Test
    void reconfigurationIsValidatedAndResetsIndices() throws Exception {
        ring(8, false, false);
        var p = f.ring;
        f.queue.activate(f.memory, 4, p.desc(), p.avail(), p.used(), features(false, false), 3, 3);
        assertEquals(4, f.queue.size());
        assertEquals(3, f.queue.nextAvail());
        f.queue.deactivate();
        assertNull(f.queue.pop());
    }
}
