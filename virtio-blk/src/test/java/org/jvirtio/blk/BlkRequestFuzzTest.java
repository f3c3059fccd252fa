package org.jvirtio.blk;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.host.QueueEngine;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.testkit.RecordingContext;

import static org.jvirtio.blk.VirtioBlk.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Coverage-guided fuzzing of the virtio-blk request parser (issue 14): the input makes up to 8
 * requests of any type (in, out, flush, get-id, discard, write-zeroes, unknown), any sector
 * (near the end of the disk, past it, overflowing), headers split over buffers or short, data
 * buffers of any length and direction, discard segments with any contents, and status buffers
 * that are missing, readable, or more than one byte; direct or through an indirect table. The
 * device serves them on a RAM disk through the queue engine.
 *
 * <p>Whatever the input: nothing escapes the engine, every chain comes back exactly once with a
 * used length within its writable bytes, a request whose last buffer is a writable byte gets a
 * status of OK, IOERR or UNSUPP there, and no byte outside guest memory changes.
 *
 * <p>Plain {@code verify} runs the committed inputs under {@code BlkRequestFuzzTestInputs};
 * {@code JAZZER_FUZZ=1} fuzzes (bench/fuzz.sh).
 */
class BlkRequestFuzzTest {
    static final long MEM = 0x40000;
    static final long GUARD = 0x1000;
    static final int RING = 16;
    static final long DISK = 64 * 1024;
    static final MemorySegment ALL = Arena.global().allocate(GUARD + MEM + GUARD, 4096);
    static final GuestMemory MEMORY;
    static final VirtioBlkDevice DEVICE;
    static final long FEATURES;
    /** Where buffers go: the data area, in 8 slots of 16 KiB. */
    static final long DATA = 0x8000;

    static {
        MemoryMapping m = MemoryMapping.ofSegment(ALL.asSlice(GUARD, MEM));
        MEMORY = GuestMemory.of(GuestRegion.of(0, m));
        m.release();
        DEVICE = new VirtioBlkDevice(new RamBackend(DISK), BlkOptions.defaults());
        FEATURES = FeatureNegotiation.offered(DEVICE);
        DEVICE.activate(new RecordingContext(FEATURES));
    }

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void anyRequestIsAnsweredWithinItsBuffers(FuzzedDataProvider data) throws Exception {
        ALL.fill((byte) 0xa5);
        ALL.asSlice(GUARD, MEM).fill((byte) 0);
        SplitQueueDriver driver = SplitQueueDriver.at(MEMORY, 0x1000, RING, FEATURES, 0x4000, 16);
        SplitQueue queue = new SplitQueue(0);
        queue.activate(MEMORY, RING, driver.descAddr(), driver.availAddr(), driver.usedAddr(), FEATURES, 0, 0);
        QueueBinding binding = new QueueBinding(0, queue, null, Interrupt.NONE);
        QueueEngine engine = new QueueEngine(binding, DEVICE.openQueue(binding));
        engine.open();
        int requests = data.consumeInt(1, 8);
        long[] writable = new long[RING];
        long[] statusAt = new long[RING];
        int added = 0;
        for (int r = 0; r < requests && data.remainingBytes() > 0; r++) {
            long base = DATA + 0x4000L * r;
            int[] types = {T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES};
            int type = data.consumeInt(0, 7) == 0 ? data.consumeInt() : types[data.consumeInt(0, types.length - 1)];
            long sector = switch (data.consumeInt(0, 3)) {
                case 0 -> data.consumeLong();
                case 1 -> DISK / SECTOR_SIZE - data.consumeInt(0, 64);
                default -> data.consumeInt(0, (int) (DISK / SECTOR_SIZE));
            };
            MEMORY.writeU32(base, type & 0xffffffffL);
            MEMORY.writeU32(base + 4, data.consumeInt(0, 3) == 0 ? data.consumeInt() & 0xffffffffL : 0);
            MEMORY.writeU64(base + 8, sector);
            // Discard / write-zeroes segments (and anything else) after the header.
            byte[] payload = data.consumeBytes(data.consumeInt(0, 64));
            MEMORY.write(base + 16, MemorySegment.ofArray(payload));
            int n = data.consumeInt(1, 6);
            long[] addrs = new long[n];
            int[] lens = new int[n];
            long at = base;
            for (int i = 0; i < n; i++) {
                int len = switch (data.consumeInt(0, 4)) {
                    case 0 -> data.consumeInt(0, 17);
                    case 1 -> 512 * data.consumeInt(0, 8);
                    case 2 -> 1;
                    default -> data.consumeInt(0, 4096);
                };
                addrs[i] = at;
                lens[i] = len;
                at += len;
                if (at > base + 0x4000) {
                    lens[i] = 0;
                    at = addrs[i];
                }
            }
            int readable = data.consumeInt(0, n);
            long w = 0;
            for (int i = readable; i < n; i++) {
                w += lens[i];
            }
            boolean indirect = data.consumeBoolean();
            int head = indirect ? driver.addIndirect(addrs, lens, n, readable, r) : driver.add(addrs, lens, n, readable, r);
            if (head < 0) {
                break;
            }
            writable[r] = w;
            statusAt[r] = readable < n && lens[n - 1] > 0 ? addrs[n - 1] + lens[n - 1] - 1 : -1;
            if (statusAt[r] >= 0) {
                MEMORY.writeU8(statusAt[r], 0xee);
            }
            added++;
        }
        driver.publish();
        for (int i = 0; i < 4 && engine.serve(); i++) {
            // a serve budget ran out: serve again
        }
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (engine.inFlight() > 0) {
            engine.reapCompletions();
            assertTrue(System.nanoTime() < deadline, "requests never completed");
        }
        assertNull(queue.violation(), "well-formed chains do not break the ring");
        boolean[] seen = new boolean[RING];
        int[] got = {0};
        driver.pollUsed((h, token, len) -> {
            int r = (int) token;
            assertFalse(seen[r], "request " + r + " answered twice");
            seen[r] = true;
            got[0]++;
            assertTrue(Integer.toUnsignedLong(len) <= writable[r], "used length " + len + " > writable " + writable[r]);
            if (statusAt[r] >= 0 && len > 0) {
                int status = MEMORY.readU8(statusAt[r]);
                assertTrue(status == S_OK || status == S_IOERR || status == S_UNSUPP, "status " + status);
            }
        });
        assertEquals(added, got[0], "every request answered");
        engine.close();
        for (long i = 0; i < GUARD; i++) {
            assertEquals((byte) 0xa5, ALL.get(ValueLayout.JAVA_BYTE, i), "guard before memory");
            assertEquals((byte) 0xa5, ALL.get(ValueLayout.JAVA_BYTE, GUARD + MEM + i), "guard after memory");
        }
    }
}
