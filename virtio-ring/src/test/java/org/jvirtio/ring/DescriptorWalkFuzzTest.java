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

import static org.junit.jupiter.api.Assertions.*;

/**
 * Coverage-guided fuzzing of the descriptor walker (issue 14): the input lays out a guest memory
 * of two regions (the second right after the first or behind a gap), a split ring in it (size,
 * features, descriptor table, avail ring, indices) and the descriptors' contents, direct,
 * indirect and crossing the region boundary. The device side then pops every chain, reads all
 * readable and writes all writable bytes through the chain cursors, and returns each chain.
 *
 * <p>Whatever the input: nothing is thrown (a bad ring is a {@link RingViolation} and a broken
 * queue, nothing else), a chain's readable and writable bytes are what its buffers add up to,
 * within the chain limit, no byte outside guest memory is touched (the guard segments around it
 * keep their pattern), and the used index is the device's once the ring is whole. (The used
 * entries themselves are not checked: a guest may hand out its own rings as buffers.)
 *
 * <p>Plain {@code verify} runs the committed inputs under {@code DescriptorWalkFuzzTestInputs}
 * (regression mode); {@code JAZZER_FUZZ=1} fuzzes (bench/fuzz.sh).
 */
class DescriptorWalkFuzzTest {
    static final long REGION = 0x4000;
    static final long GUARD = 0x1000;
    /** Guest memory: two regions between guard bytes, allocated once (a fresh memfd per input is slow). */
    static final MemorySegment ALL = Arena.global().allocate(GUARD + REGION + GUARD + REGION + GUARD, 4096);
    static final MemorySegment A = ALL.asSlice(GUARD, REGION);
    static final MemorySegment B = ALL.asSlice(GUARD + REGION + GUARD, REGION);
    static final byte PATTERN = (byte) 0xa5;
    static final MemorySegment GUARD_PATTERN = Arena.global().allocate(GUARD).fill(PATTERN);
    /** What devices read into and write from. */
    static final MemorySegment SCRATCH = Arena.global().allocate(1 << 16);

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void walkingAnyRingStaysInsideGuestMemory(FuzzedDataProvider data) throws RingConfigurationException {
        ALL.fill(PATTERN);
        A.fill((byte) 0);
        B.fill((byte) 0);
        int size = 1 << data.consumeInt(0, 6);
        boolean adjacent = data.consumeBoolean();
        long bStart = adjacent ? REGION : REGION + 0x10000L * data.consumeInt(1, 4);
        long features = VirtioFeatures.bit(VirtioFeatures.VERSION_1);
        if (data.consumeBoolean()) {
            features |= VirtioFeatures.bit(VirtioFeatures.INDIRECT_DESC);
        }
        if (data.consumeBoolean()) {
            features |= VirtioFeatures.bit(VirtioFeatures.EVENT_IDX);
        }
        int maxChain = data.consumeBoolean() ? SplitQueue.DEFAULT_MAX_CHAIN_BUFFERS : data.consumeInt(1, 64);
        MemoryMapping ma = MemoryMapping.ofSegment(A);
        MemoryMapping mb = MemoryMapping.ofSegment(B);
        GuestMemory mem = GuestMemory.of(GuestRegion.of(0, ma), GuestRegion.of(bStart, mb));
        ma.release();
        mb.release();
        try {
            SplitRingLayout.Placement ring = SplitRingLayout.place(0, size);
            // Descriptors: addresses near the interesting places (each region's ends, the ring,
            // the boundary), lengths from tiny to huge, any flags and next.
            long[] anchors = {0, ring.desc(), ring.avail(), ring.used(), REGION - 16, bStart, bStart + REGION - 16, 0x1000, 0x2000};
            int descs = data.consumeInt(0, size + 64);
            for (int i = 0; i < descs && data.remainingBytes() > 0; i++) {
                long at = data.consumeBoolean() ? ring.desc() + 16L * data.consumeInt(0, size - 1)
                        : (data.consumeBoolean() ? 0x2000 : bStart) + 16L * data.consumeInt(0, 255);
                long addr = data.consumeInt(0, 3) == 0 ? data.consumeLong() : anchors[data.consumeInt(0, anchors.length - 1)] + data.consumeInt(-64, 4096);
                int len = data.consumeInt(0, 3) == 0 ? data.consumeInt() : data.consumeInt(0, 4096);
                int flags = data.consumeInt(0, 15) == 0 ? data.consumeShort() : data.consumeInt(0, 7);
                int next = data.consumeInt(0, 7) == 0 ? data.consumeShort() & 0xffff : data.consumeInt(0, size);
                if (mem.contains(at, 16)) {
                    mem.writeU64(at, addr);
                    mem.writeU32(at + 8, len & 0xffffffffL);
                    mem.writeU16(at + 12, flags & 0xffff);
                    mem.writeU16(at + 14, next);
                }
            }
            int avail = data.consumeInt(0, size + 2);
            for (int i = 0; i < avail; i++) {
                mem.writeU16(ring.avail() + 4 + 2L * (i % size), data.consumeInt(0, 7) == 0 ? data.consumeShort() & 0xffff : data.consumeInt(0, size - 1));
            }
            int availIdx = data.consumeInt(0, 7) == 0 ? data.consumeShort() & 0xffff : avail;
            mem.writeU16(ring.avail() + 2, availIdx);
            int base = data.consumeInt(0, 3) == 0 ? data.consumeShort() & 0xffff : 0;
            SplitQueue q = new SplitQueue(0, maxChain);
            int[] violations = {0};
            q.setViolationListener((queue, v) -> violations[0]++);
            q.activate(mem, size, ring.desc(), ring.avail(), ring.used(), features, base, 0);
            int served = 0;
            DescriptorChain c;
            while (served < 2 * size && (c = q.pop()) != null) {
                served++;
                assertTrue(c.head() < size, "head " + c.head());
                assertTrue(c.bufferCount() <= maxChain, "chain of " + c.bufferCount() + " buffers");
                assertTrue(c.readableLength() + c.writableLength() <= 1L << 32, "chain longer than 2^32 bytes");
                long readable = 0;
                long writable = 0;
                for (int i = 0; i < c.bufferCount(); i++) {
                    if (i < c.readableBufferCount()) {
                        readable += c.bufferLength(i);
                    } else {
                        writable += c.bufferLength(i);
                    }
                }
                assertEquals(readable, c.readableLength());
                assertEquals(writable, c.writableLength());
                ChainReader r = c.reader();
                // Touch the readable bytes: a few as devices parse headers, the rest in bulk.
                for (int i = 0; i < 3 && r.remaining() >= 8; i++) {
                    r.readU64();
                }
                if (r.remaining() > 0 && r.remaining() < 4) {
                    r.readU8();
                }
                r.read(SCRATCH.asSlice(0, Math.min(r.remaining(), SCRATCH.byteSize())));
                ChainWriter w = c.writer();
                if (w.remaining() >= 2) {
                    w.writeU16(0x5a5a);
                }
                w.write(SCRATCH.asSlice(0, Math.min(w.remaining(), SCRATCH.byteSize())));
                long n = w.position();
                q.addUsed(c, (int) n);
                if (data.consumeBoolean()) {
                    q.publishUsed();
                }
            }
            q.publishUsed();
            q.enableNotifications();
            int used = mem.readU16(ring.used() + 2);
            if (violations[0] > 0) {
                assertTrue(q.isBroken());
            } else {
                // (a broken ring is left as it was: what was not yet published stays so)
                assertEquals(q.nextUsed(), used, "used idx published");
            }
        } finally {
            mem.release();
        }
        assertGuards();
    }

    private static void assertGuards() {
        for (long g : new long[] {0, GUARD + REGION, GUARD + REGION + GUARD + REGION}) {
            long at = ALL.asSlice(g, GUARD).mismatch(GUARD_PATTERN);
            if (at >= 0) {
                fail("a byte outside guest memory was written at guard offset " + (g + at));
            }
        }
    }
}
