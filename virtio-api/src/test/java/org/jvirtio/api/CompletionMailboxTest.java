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
        /** What {@link #wakeHere} answers (a host that runs a task on the queue's thread, or not), and how often it was asked. */
        boolean hostWakesHere;
        int wakeHereCalls;

        @Override
        public boolean wakeHere() {
            wakeHereCalls++;
            return hostWakesHere;
        }

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

    /**
     * Once the queue's thread has reaped, its own posts go through plain stores (no atomic
     * instruction): they are delivered at the next reap beside other threads' posts, each once,
     * with one wake-up per reap: a loop task where the host runs one, the eventfd where it does not.
     */
    @Test
    void postsOnTheQueueThreadItselfAreDeliveredBesideOtherThreadsPosts() throws Exception {
        for (boolean hostWakesHere : new boolean[] {true, false}) {
            Receiver r = new Receiver();
            r.hostWakesHere = hostWakesHere;
            try (CompletionMailbox box = new CompletionMailbox(SLOTS, r);
                 java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
                java.lang.foreign.MemorySegment counter = a.allocate(8, 8);
                assertEquals(0, box.reap(), "the first reap: this thread is the queue's from now on");
                for (int round = 0; round < 100; round++) {
                    java.util.Arrays.fill(r.busy, true);
                    int base = r.completed;
                    int roundNo = round;
                    // odd slots from another thread, even slots from this one, at the same time
                    Thread other = Thread.ofPlatform().start(() -> {
                        for (int slot = 1; slot < SLOTS; slot += 2) {
                            box.complete(slot, slot + roundNo);
                        }
                    });
                    int calls = r.wakeHereCalls;
                    for (int slot = 0; slot < SLOTS; slot += 2) {
                        box.complete(slot, slot + 1000 + roundNo);
                    }
                    other.join();
                    assertTrue(r.wakeHereCalls - calls >= 1 && r.wakeHereCalls - calls <= 2,
                            "one wake-up per reap for this thread's posts (and perhaps one for the other's): " + (r.wakeHereCalls - calls));
                    if (!hostWakesHere) {
                        assertTrue(Libc.pollIn(box.completionFd(), 1000), "a host without loop tasks is woken through the eventfd");
                        Libc.eventfdRead(box.completionFd(), counter);
                    }
                    assertEquals(SLOTS, box.reap(), "round " + round);
                    assertEquals(SLOTS, r.completed - base);
                    for (int slot = 0; slot < SLOTS; slot++) {
                        assertEquals(slot + roundNo + (slot % 2 == 0 ? 1000 : 0), r.lengths[slot], "slot " + slot);
                    }
                    assertEquals(0, box.reap(), "nothing twice");
                }
                r.busy[7] = true;
                box.complete(7, 1);
                assertThrows(IllegalStateException.class, () -> box.complete(7, 2), "twice on the queue's thread");
                AtomicReference<Throwable> elsewhere = new AtomicReference<>();
                Thread other = Thread.ofPlatform().start(() -> {
                    try {
                        box.complete(7, 3);
                    } catch (Throwable e) {
                        elsewhere.set(e);
                    }
                });
                other.join();
                assertInstanceOf(IllegalStateException.class, elsewhere.get(), "twice, the second from elsewhere");
                assertEquals(1, box.reap());
                assertEquals(1, r.lengths[7]);
            }
        }
    }
}
