package org.jvirtio.ring;

import java.lang.foreign.Arena;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DirtyLog;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Dirty logging at the ring (issue 12, groundwork): with a log set, a used element marks exactly
 * the pages of the bytes the device reports written (writable buffers, in order), the used ring's
 * element and index, and avail_event; readable buffers and unwritten tails stay clean; with no
 * log nothing is marked.
 */
class SplitQueueDirtyLogTest {
    @Test
    void aUsedElementMarksTheWrittenPagesAndTheUsedRing() throws Exception {
        GuestMemory mem = TestMemory.memfd(1 << 20);
        try {
            long f = VirtioFeatures.RING_FEATURES;
            SplitQueueDriver d = SplitQueueDriver.at(mem, 0x1000, 16, f, 0, 0);
            SplitQueue q = new SplitQueue(0);
            q.activate(mem, 16, d.descAddr(), d.availAddr(), d.usedAddr(), f, 0, 0);
            DirtyLog log = new DirtyLog(Arena.ofAuto().allocate(32, 8)); // 256 pages: the whole 1 MiB
            // readable 0x20000 (2 pages), writable 0x40000 (3 pages) then 0x60000 (1 page): 0x3800 written
            assertTrue(d.add(new long[] {0x20000, 0x40000, 0x60000}, new int[] {0x2000, 0x3000, 0x1000}, 3, 1, 1) >= 0);
            d.publish();
            DescriptorChain c = q.pop();
            q.addUsed(c, 0x1800); // unlogged: no log yet
            q.publishUsed();
            for (int p = 0; p < 256; p++) {
                assertFalse(log.isMarked(p), "nothing marked without a log: page " + p);
            }
            q.setDirtyLog(log, 0xe0000); // the used ring logged at an address of the front-end's choosing
            assertTrue(d.add(new long[] {0x20000, 0x40000, 0x60000}, new int[] {0x2000, 0x3000, 0x1000}, 3, 1, 2) >= 0);
            d.publish();
            c = q.pop();
            q.addUsed(c, 0x3800);
            q.publishUsed();
            q.enableNotifications();
            java.util.Set<Long> marked = new java.util.TreeSet<>();
            for (long p = 0; p < 256; p++) {
                if (log.isMarked(p)) {
                    marked.add(p);
                }
            }
            // 0x40000-0x42fff (3 pages, all written) and 0x60000 (0x800 of it); the used ring at 0xe0000
            assertEquals(java.util.Set.of(0x40L, 0x41L, 0x42L, 0x60L, 0xe0L), marked);
            assertTrue(c.bufferGuestAddress(1) == 0x40000);
        } finally {
            mem.release();
        }
    }

    /**
     * A chain given back to a pool over its retention bound loses its grown arrays; the pages it
     * wrote are logged before that (they were not: a long chain used while the pool kept more than
     * {@link ChainPool#RETAINED_BUFFERS} entries left its pages unmarked).
     */
    @Test
    void longChainsUsedWhileThePoolTrimsStillMarkTheirPages() throws Exception {
        int chains = 140;
        int buffers = 300; // grows a chain's arrays to 512 entries: 140 of them pass the pool's bound
        GuestMemory mem = TestMemory.memfd(8 << 20);
        try {
            long f = VirtioFeatures.RING_FEATURES;
            SplitRingLayout.Placement p = SplitRingLayout.place(0x1000, 256);
            SplitQueueDriver d = new SplitQueueDriver(mem, 256, p.desc(), p.avail(), p.used(), f, 0x10000, buffers);
            SplitQueue q = new SplitQueue(0);
            q.activate(mem, 256, p.desc(), p.avail(), p.used(), f, 0, 0);
            DirtyLog log = new DirtyLog(Arena.ofAuto().allocate(256, 8)); // 2048 pages: the whole 8 MiB
            q.setDirtyLog(log);
            for (int i = 0; i < chains; i++) {
                long[] addrs = new long[buffers];
                int[] lens = new int[buffers];
                for (int k = 0; k < buffers; k++) {
                    addrs[k] = ((0x200L + i) << 12) + k;
                    lens[k] = 1;
                }
                assertTrue(d.addIndirect(addrs, lens, buffers, 0, i) >= 0);
            }
            d.publish();
            DescriptorChain[] popped = new DescriptorChain[chains];
            for (int i = 0; i < chains; i++) {
                popped[i] = q.pop();
                assertNotNull(popped[i], "chain " + i);
            }
            assertTrue(q.retainedBuffers() > ChainPool.RETAINED_BUFFERS, "the pool is over its bound");
            for (DescriptorChain c : popped) {
                q.addUsed(c, buffers);
            }
            q.publishUsed();
            for (int i = 0; i < chains; i++) {
                assertTrue(log.isMarked(0x200L + i), "the page chain " + i + " wrote is marked");
            }
        } finally {
            mem.release();
        }
    }
}
