package org.jvirtio.ring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import org.jvirtio.api.ChainReader;
import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;

import static org.jvirtio.ring.PackedRingLayout.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Coverage-guided fuzzing of the packed ring's device side (issue 25), as
 * {@link DescriptorWalkFuzzTest} is for split: the input lays out a guest memory of two regions,
 * a packed ring of any size (not only powers of two), its state (position and wrap counters),
 * features, and descriptors with any flags, ids, addresses and lengths, direct and in indirect
 * tables, some of them crossing the region boundary. The device pops, reads and writes every
 * chain through the cursors and returns them in an order the input picks, re-checking the ring
 * with notifications enabled now and then.
 *
 * <p>Whatever the input: nothing is thrown, a popped chain's buffer id is below the ring size and
 * not in flight twice, its lengths add up and stay under 2^32, no byte outside guest memory is
 * touched, and the loop ends (a ring of N descriptors yields at most N chains before a used
 * one frees a position). Plain {@code verify} replays the committed inputs under
 * {@code PackedRingFuzzTestInputs}; {@code JAZZER_FUZZ=1} fuzzes (bench/fuzz.sh packed).
 */
class PackedRingFuzzTest {
    static final long REGION = 0x4000;
    static final long GUARD = 0x1000;
    static final MemorySegment ALL = Arena.global().allocate(GUARD + REGION + GUARD + REGION + GUARD, 4096);
    static final MemorySegment A = ALL.asSlice(GUARD, REGION);
    static final MemorySegment B = ALL.asSlice(GUARD + REGION + GUARD, REGION);
    static final byte PATTERN = (byte) 0xa5;
    static final MemorySegment GUARD_PATTERN = Arena.global().allocate(GUARD).fill(PATTERN);
    static final MemorySegment SCRATCH = Arena.global().allocate(1 << 16);

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void anyPackedRingIsWalkedInsideGuestMemory(FuzzedDataProvider data) throws RingConfigurationException {
        ALL.fill(PATTERN);
        A.fill((byte) 0);
        B.fill((byte) 0);
        int size = data.consumeInt(1, 96);
        boolean adjacent = data.consumeBoolean();
        long bStart = adjacent ? REGION : REGION + 0x10000L * data.consumeInt(1, 4);
        long features = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.RING_PACKED);
        if (data.consumeBoolean()) {
            features |= VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC);
        }
        if (data.consumeBoolean()) {
            features |= VirtioFeatures.bit(VirtioFeatures.EVENT_IDX);
        }
        int maxChain = data.consumeBoolean() ? RingQueue.DEFAULT_MAX_CHAIN_BUFFERS : data.consumeInt(1, 64);
        MemoryMapping ma = MemoryMapping.ofSegment(A);
        MemoryMapping mb = MemoryMapping.ofSegment(B);
        GuestMemory mem = GuestMemory.of(GuestRegion.of(0, ma), GuestRegion.of(bStart, mb));
        ma.release();
        mb.release();
        try {
            Placement ring = place(0, size);
            long[] anchors = {0, ring.desc(), ring.driver(), ring.device(), REGION - 16, bStart, bStart + REGION - 16, 0x2000, 0x3000};
            boolean startWrap = data.consumeBoolean();
            int start = data.consumeInt(0, size - 1);
            // Descriptors in the ring (mostly made available for the wrap counter of their
            // position, from the start position on) and in tables elsewhere.
            int descs = data.consumeInt(0, size + 32);
            int pos = start;
            boolean wrap = startWrap;
            for (int i = 0; i < descs && data.remainingBytes() > 0; i++) {
                long at;
                boolean inRing = data.consumeInt(0, 3) != 0;
                if (inRing) {
                    at = ring.desc() + 16L * pos;
                } else {
                    at = (data.consumeBoolean() ? 0x2000 : bStart) + 16L * data.consumeInt(0, 255);
                }
                long addr = data.consumeInt(0, 3) == 0 ? data.consumeLong() : anchors[data.consumeInt(0, anchors.length - 1)] + data.consumeInt(-64, 4096);
                int len = data.consumeInt(0, 3) == 0 ? data.consumeInt() : data.consumeInt(0, 4096);
                int id = data.consumeInt(0, 7) == 0 ? data.consumeShort() & 0xffff : data.consumeInt(0, size - 1);
                int flags = data.consumeInt(0, 15) == 0 ? data.consumeShort() & 0xffff
                        : (data.consumeInt(0, 7)) | (inRing && data.consumeInt(0, 7) != 0 ? availFlags(wrap) : (data.consumeBoolean() ? DESC_F_AVAIL : DESC_F_USED));
                if (mem.contains(at, 16)) {
                    mem.writeU64(at, addr);
                    mem.writeU32(at + 8, len & 0xffffffffL);
                    mem.writeU16(at + DESC_ID, id);
                    mem.writeU16(at + DESC_FLAGS, flags);
                }
                if (inRing && ++pos == size) {
                    pos = 0;
                    wrap = !wrap;
                }
            }
            mem.writeU32(ring.driver(), data.consumeInt());
            PackedQueue q = new PackedQueue(0, maxChain);
            int[] violations = {0};
            q.setViolationListener((queue, v) -> violations[0]++);
            q.activate(mem, size, ring.desc(), ring.driver(), ring.device(), features, offWrap(start, startWrap), -1);
            boolean[] inFlight = new boolean[size];
            DescriptorChain[] held = new DescriptorChain[size];
            int heldCount = 0;
            int popped = 0;
            DescriptorChain c;
            while (popped < 4 * size && (c = q.pop()) != null) {
                popped++;
                assertTrue(c.head() < size, "buffer id " + c.head());
                assertFalse(inFlight[c.head()], "buffer id " + c.head() + " popped twice while in flight");
                inFlight[c.head()] = true;
                assertTrue(c.bufferCount() <= maxChain, "chain of " + c.bufferCount() + " buffers");
                assertTrue(c.readableLength() + c.writableLength() <= 1L << 32, "chain longer than 2^32 bytes");
                ChainReader r = c.reader();
                for (int i = 0; i < 3 && r.remaining() >= 8; i++) {
                    r.readU64();
                }
                r.read(SCRATCH.asSlice(0, Math.min(r.remaining(), SCRATCH.byteSize())));
                ChainWriter w = c.writer();
                w.write(SCRATCH.asSlice(0, Math.min(w.remaining(), SCRATCH.byteSize())));
                if (data.consumeBoolean() && data.remainingBytes() > 0) {
                    held[heldCount++] = c; // returned later, out of order
                } else {
                    inFlight[c.head()] = false;
                    q.addUsed(c, (int) w.position());
                }
                if (data.consumeInt(0, 3) == 0) {
                    q.publishUsed();
                }
                if (data.consumeInt(0, 7) == 0) {
                    q.enableNotifications();
                    q.disableNotifications();
                }
                if (heldCount > 0 && data.consumeBoolean()) {
                    DescriptorChain h = held[--heldCount];
                    inFlight[h.head()] = false;
                    q.addUsed(h, 0);
                }
            }
            assertTrue(popped <= 4 * size, "the loop ends");
            while (heldCount > 0) {
                DescriptorChain h = held[--heldCount];
                q.addUsed(h, 0);
            }
            q.publishUsed();
            q.enableNotifications();
            assertEquals(0, q.inFlight());
            if (violations[0] > 0) {
                assertTrue(q.isBroken());
                assertEquals(1, violations[0], "the listener hears one violation");
            }
        } finally {
            mem.release();
        }
        for (long g : new long[] {0, GUARD + REGION, GUARD + REGION + GUARD + REGION}) {
            long at = ALL.asSlice(g, GUARD).mismatch(GUARD_PATTERN);
            if (at >= 0) {
                fail("a byte outside guest memory was written at guard offset " + (g + at));
            }
        }
    }
}
