package org.jvirtio.api;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

import org.jvirtio.api.linux.Libc;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Completions posted from other threads and delivered on the queue's: each once, with its length. */
class CompletionMailboxTest {
    static final int SLOTS = 256;

    /** What the queue's thread receives, checked as the engine would: a slot completes once per request. */
    static final class Receiver implements QueueCompletions {
        final int[] lengths = new int[SLOTS];
        final boolean[] busy = new boolean[SLOTS];
        int completed;

        @Override
        public void complete(int slot, int writtenLength) {
            assertTrue(busy[slot], "slot " + slot + " delivered with no request in it");
            busy[slot] = false;
            lengths[slot] = writtenLength;
            completed++;
        }

        @Override
        public void completeTogether(int slot, DescriptorChain[] chains, int[] writtenLengths, int n) {
            fail("not used");
        }

        @Override
        public void resume() {
            fail("not used");
        }

        @Override
        public void resumeAfter(long nanos) {
            fail("not used");
        }
    }

    @Test
    void fourThreadsPostAndTheQueueThreadDeliversEachCompletionOnce() throws Exception {
        Receiver r = new Receiver();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        try (CompletionMailbox box = new CompletionMailbox(SLOTS, r)) {
            int rounds = 200;
            for (int round = 0; round < rounds; round++) {
                java.util.Arrays.fill(r.busy, true);
                int base = r.completed;
                CountDownLatch go = new CountDownLatch(1);
                List<Thread> threads = new ArrayList<>();
                for (int t = 0; t < 4; t++) {
                    int first = t;
                    int roundNo = round;
                    threads.add(Thread.ofPlatform().start(() -> {
                        try {
                            go.await();
                            for (int slot = first; slot < SLOTS; slot += 4) {
                                box.complete(slot, slot + roundNo);
                            }
                        } catch (Throwable e) {
                            failure.set(e);
                        }
                    }));
                }
                go.countDown();
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (r.completed - base < SLOTS) {
                    assertTrue(System.nanoTime() < deadline, "round " + round + ": " + (r.completed - base) + " delivered");
                    if (Libc.pollIn(box.completionFd(), 100)) {
                        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
                            Libc.eventfdRead(box.completionFd(), a.allocate(8, 8)); // as the host does before reap()
                        }
                    }
                    box.reap();
                }
                for (Thread t : threads) {
                    t.join();
                }
                assertNull(failure.get());
                assertEquals(0, box.reap(), "nothing twice");
                for (int slot = 0; slot < SLOTS; slot++) {
                    assertEquals(slot + round, r.lengths[slot]);
                }
            }
            assertEquals(rounds * SLOTS, r.completed);
        }
    }

    @Test
    void misuseIsRefusedAndChangesNothing() throws Exception {
        Receiver r = new Receiver();
        CompletionMailbox box = new CompletionMailbox(SLOTS, r);
        box.complete(3, 10);
        assertThrows(IllegalStateException.class, () -> box.complete(3, 11), "a request completes once");
        assertThrows(IllegalArgumentException.class, () -> box.complete(4, -1));
        assertThrows(IndexOutOfBoundsException.class, () -> box.complete(SLOTS, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> box.complete(-1, 1));
        r.busy[3] = true;
        assertEquals(1, box.reap());
        assertEquals(10, r.lengths[3]);
        r.busy[3] = true;
        box.complete(3, 12); // the slot's next request
        assertEquals(1, box.reap());
        assertEquals(12, r.lengths[3]);
        box.close();
        assertThrows(IllegalStateException.class, () -> box.complete(5, 1), "after close");
        assertThrows(IllegalArgumentException.class, () -> new CompletionMailbox(0, r));
    }
}
