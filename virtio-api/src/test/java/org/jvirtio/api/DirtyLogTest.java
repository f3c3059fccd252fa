package org.jvirtio.api;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.BitSet;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The dirty log marks exactly the pages written, in the spec's byte layout, atomically (issue 12, first part). */
class DirtyLogTest {
    @Test
    void marksExactlyThePagesWrittenInTheSpecsLayout() {
        MemorySegment bitmap = Arena.ofAuto().allocate(64, 8); // 512 pages: 2 MiB of guest memory
        DirtyLog log = new DirtyLog(bitmap);
        assertEquals(512, log.pages());
        BitSet expected = new BitSet();
        long[][] writes = {{0x1000, 1}, {0x2fff, 2}, {0x10000, 0x3000}, {0x7ff00, 0x200}, {0x5000, 0}, {0x1fffff, 1}, {0x200000, 4096}};
        for (long[] w : writes) {
            log.mark(w[0], w[1]);
            if (w[1] > 0) {
                for (long p = w[0] >>> 12; p <= (w[0] + w[1] - 1) >>> 12 && p < 512; p++) {
                    expected.set((int) p);
                }
            }
        }
        for (int p = 0; p < 512; p++) {
            assertEquals(expected.get(p), log.isMarked(p), "page " + p);
            // vhost-user.rst: log[page / 8] |= 1 << page % 8
            int b = bitmap.get(ValueLayout.JAVA_BYTE, p / 8) & 0xff;
            assertEquals(expected.get(p), (b & (1 << (p % 8))) != 0, "byte layout, page " + p);
        }
        assertEquals(expected.cardinality(), 1 + 2 + 3 + 2 + 1, "1, 2 (across a page end), 3, 2 (across), the last page; 0x200000 is past the log");
    }

    @Test
    void concurrentMarksOfOneWordAreAllKept() throws Exception {
        MemorySegment bitmap = Arena.ofShared().allocate(8, 8);
        DirtyLog log = new DirtyLog(bitmap);
        for (int round = 0; round < 2000; round++) {
            bitmap.fill((byte) 0);
            Thread[] t = new Thread[4];
            for (int k = 0; k < 4; k++) {
                int kk = k;
                t[k] = Thread.ofPlatform().start(() -> {
                    for (int p = kk; p < 64; p += 4) {
                        log.mark((long) p << 12, 1);
                    }
                });
            }
            for (Thread th : t) {
                th.join();
            }
            assertEquals(-1L, bitmap.get(ValueLayout.JAVA_LONG, 0), "round " + round + ": a mark was lost");
        }
    }

    @Test
    void aLogNotMadeOfWordsIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new DirtyLog(Arena.ofAuto().allocate(12, 8)));
    }
}
