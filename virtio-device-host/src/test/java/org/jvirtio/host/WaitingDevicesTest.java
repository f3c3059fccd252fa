package org.jvirtio.host;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.time.Duration;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.Inbox;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.testkit.TestMemory;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The framework's help for devices that wait: for time ({@link QueueCompletions#resumeAfter},
 * the host's timer) and for input from other threads ({@link Inbox}), on the engine alone and on
 * both hosts.
 */
class WaitingDevicesTest {
    static final int SIZE = 64;
    static final long BUFS = 0x10000;

    GuestMemory mem;
    SplitQueueDriver driver;
    SplitQueue queue;
    EventFd kick;
    EventFd call;

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(1 << 20);
        long f = VirtioFeatures.RING_FEATURES;
        driver = SplitQueueDriver.at(mem, 0x1000, SIZE, f, 0, 0);
        queue = new SplitQueue(0);
        queue.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, 0, 0);
        kick = EventFd.create(true);
        call = EventFd.create(true);
    }

    @AfterEach
    void tearDown() {
        kick.close();
        call.close();
        mem.release();
    }

    QueueBinding binding() {
        return new QueueBinding(0, queue, kick, call::signal);
    }

    /** Offers buffer {@code token} (8 writable bytes at BUFS + 8 * (token % SIZE)) and kicks. */
    void give(long token) {
        assertTrue(driver.add(new long[] {BUFS + 8L * (token % SIZE)}, new int[] {8}, 1, 0, token) >= 0);
        if (driver.publish()) {
            kick.signal();
        }
    }

    /** Collects what came back within {@code millis}, waiting on the call eventfd: token -> the 8 bytes written. */
    List<long[]> awaitUsed(int want, long millis) throws Exception {
        List<long[]> got = new ArrayList<>();
        long deadline = System.nanoTime() + millis * 1_000_000L;
        while (got.size() < want && System.nanoTime() < deadline) {
            if (!driver.enableInterrupts()) {
                call.await(20);
            }
            driver.pollUsed((head, token, len) -> got.add(new long[] {token, len == 8 ? mem.readU64(BUFS + 8 * (token % SIZE)) : -1}));
        }
        return got;
    }

    // ---------------------------------------------------------------- resumeAfter

    /** A handler that turns the first chain away and asks to be resumed {@code delayNanos} later; answers every other chain with 8 bytes. */
    static final class Sleeper implements QueueHandler {
        final long delayNanos;
        QueueCompletions completions;
        volatile long turnedAwayAt;
        volatile long servedAt;
        boolean slept;

        Sleeper(long delayNanos) {
            this.delayNanos = delayNanos;
        }

        @Override
        public void open(QueueCompletions c) {
            completions = c;
        }

        @Override
        public int start(DescriptorChain chain, int slot) {
            if (!slept) {
                slept = true;
                turnedAwayAt = System.nanoTime();
                completions.resumeAfter(delayNanos);
                return NOT_NOW;
            }
            servedAt = System.nanoTime();
            chain.writer().writeU64(42);
            return 8;
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread-per-queue", "io-threads"})
    void aQueueThatAskedToBeResumedLaterRestsAtLeastThatLongAndIsThenServedByTheHostsTimer(String kind) throws Exception {
        QueueHost host = QueueEngineTest.host(kind);
        Sleeper h = new Sleeper(30_000_000);
        QueueEngine engine = new QueueEngine(binding(), h);
        QueueHost.Started run = host.start(engine);
        try {
            give(0);
            List<long[]> used = awaitUsed(1, 10_000);
            assertEquals(1, used.size(), kind + ": the chain turned away was served after the delay");
            assertEquals(42, used.get(0)[1]);
            assertTrue(h.servedAt - h.turnedAwayAt >= 30_000_000, "rested " + (h.servedAt - h.turnedAwayAt) + " ns, asked for 30 ms");
            assertTrue(run.stop(10_000_000_000L));
        } finally {
            run.stop();
            host.close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread-per-queue", "io-threads"})
    void aStopWhileATimerIsPendingIsImmediateAndTheTimerServesNothingAfterIt(String kind) throws Exception {
        QueueHost host = QueueEngineTest.host(kind);
        Sleeper h = new Sleeper(300_000_000);
        QueueEngine engine = new QueueEngine(binding(), h);
        QueueHost.Started run = host.start(engine);
        try {
            give(0);
            Await.await(engine::resting, Duration.ofSeconds(5), "the queue rests");
            long t0 = System.nanoTime();
            assertTrue(run.stop(10_000_000_000L));
            assertTrue(System.nanoTime() - t0 < 250_000_000L, "the stop did not wait for the timer");
            Thread.sleep(400);
            assertEquals(0, h.servedAt, "nothing served after the stop");
            assertEquals(1, driver.inFlight(), "the buffer is still the driver's");
            assertEquals(0, queue.nextAvail());
        } finally {
            run.stop();
            host.close();
        }
    }

    @Test
    void onTheEngineAloneTheDeadlineIsVisibleAndAnEarlyFiringServesNothing() throws Exception {
        long[] now = {1_000};
        Sleeper h = new Sleeper(500);
        QueueEngine e = new QueueEngine(binding(), h);
        e.clock(() -> now[0]);
        List<Long> armed = new ArrayList<>();
        e.timer(armed::add);
        e.open();
        give(0);
        assertFalse(e.serve());
        assertTrue(e.resting());
        assertEquals(1_500, e.timerDeadline());
        assertEquals(List.of(500L), armed, "the host's timer was armed for the delay");
        now[0] = 1_200;
        assertFalse(e.timerExpired(), "too early: nothing");
        assertEquals(List.of(500L, 300L), armed, "re-armed for what is left");
        assertTrue(e.resting());
        now[0] = 1_500;
        assertFalse(e.timerExpired());
        assertFalse(e.resting());
        assertEquals(0, e.timerDeadline());
        assertEquals(1, awaitUsed(1, 1000).size());
        assertFalse(e.timerExpired(), "a stale firing does nothing");
        e.close();
    }

    // ---------------------------------------------------------------- Inbox

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread-per-queue", "io-threads", "io-threads-polling"})
    void eventsFromThreeThreadsReachTheDriversBuffersOnceEachAndWhatWasDroppedIsCounted(String kind) throws Exception {
        QueueHost host = QueueEngineTest.host(kind);
        Inbox<Long> inbox = new Inbox<>(16, Inbox.WhenFull.DROP_NEWEST);
        QueueEngine engine = new QueueEngine(binding(), inbox.handler((chain, v) -> {
            chain.writer().writeU64(v);
            return 8;
        }));
        QueueHost.Started run = host.start(engine);
        List<Thread> producers = new ArrayList<>();
        AtomicLong accepted = new AtomicLong();
        try {
            for (int i = 0; i < 8; i++) {
                give(i);
            }
            for (int t = 0; t < 3; t++) {
                long base = t * 1_000_000L;
                producers.add(Thread.ofPlatform().start(() -> {
                    for (long v = 0; v < 2_000; v++) {
                        if (inbox.offer(base + v)) {
                            accepted.incrementAndGet();
                        }
                        if (v % 64 == 0) {
                            java.util.concurrent.locks.LockSupport.parkNanos(200_000);
                        }
                    }
                }));
            }
            Set<Long> seen = new HashSet<>();
            long next = 8;
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (true) {
                boolean producing = producers.stream().anyMatch(Thread::isAlive);
                if (!producing && seen.size() == accepted.get()) {
                    break;
                }
                assertTrue(System.nanoTime() < deadline, kind + ": " + seen.size() + " of " + accepted.get() + " delivered");
                for (long[] u : awaitUsed(1, 50)) {
                    assertTrue(seen.add(u[1]), "value " + u[1] + " delivered twice");
                    give(next++); // a receive queue's driver gives each buffer back
                }
            }
            assertEquals(3 * 2_000, accepted.get() + inbox.dropped(), "every offer delivered or counted as dropped");
            Await.await(engine::resting, Duration.ofSeconds(5), "the queue rests");
            assertTrue(run.stop(10_000_000_000L), "resting with nothing in flight: the stop is immediate");
            assertEquals(8, driver.inFlight(), "the 8 buffers offered last are still the driver's");
        } finally {
            for (Thread t : producers) {
                t.join(5_000);
            }
            run.stop();
            host.close();
            inbox.close();
        }
    }

    @Test
    void aFullInboxDropsTheNewestOrTheOldestAndEventsOfAnotherSessionAreDropped() throws Exception {
        Inbox<Long> newest = new Inbox<>(2, Inbox.WhenFull.DROP_NEWEST);
        assertFalse(newest.offer(1L), "no queue open: dropped");
        assertEquals(1, newest.dropped());
        QueueHandler h = newest.handler((chain, v) -> {
            chain.writer().writeU64(v);
            return 8;
        });
        QueueEngine e = new QueueEngine(binding(), h);
        // A clock of a nanosecond per look: a loaded machine cannot spend the serve budget (2 ms)
        // in the middle of this test and make reapCompletions say work is left (seen once in CI).
        java.util.concurrent.atomic.AtomicLong ns = new java.util.concurrent.atomic.AtomicLong();
        e.clock(ns::incrementAndGet);
        e.open();
        assertTrue(newest.offer(10L));
        assertTrue(newest.offer(11L));
        assertFalse(newest.offer(12L), "full: the newest is dropped");
        assertEquals(2, newest.dropped());
        give(0);
        give(1);
        give(2);
        e.serve();
        List<long[]> used = awaitUsed(2, 1000);
        assertEquals(List.of(10L, 11L), used.stream().map(u -> u[1]).toList());
        assertTrue(e.resting(), "the third buffer waits for an event");
        assertTrue(newest.offer(13L));
        assertFalse(e.reapCompletions());
        assertEquals(13L, awaitUsed(1, 1000).get(0)[1]);
        e.quiesce();
        e.close();
        assertFalse(newest.offer(14L), "closed queue: dropped");

        Inbox<Long> oldest = new Inbox<>(2, Inbox.WhenFull.DROP_OLDEST);
        QueueEngine e2 = new QueueEngine(binding(), oldest.handler((chain, v) -> 0));
        e2.open();
        assertTrue(oldest.offer(1L));
        assertTrue(oldest.offer(2L));
        assertTrue(oldest.offer(3L), "full: the oldest makes room");
        assertEquals(1, oldest.dropped());
        assertEquals(2, oldest.waiting());
        e2.close();
        // A new driver session: what waited from the last one is stale.
        QueueEngine e3 = new QueueEngine(binding(), oldest.handler((chain, v) -> 0));
        e3.open();
        assertEquals(0, oldest.waiting());
        assertEquals(3, oldest.dropped());
        e3.close();
        newest.close();
        oldest.close();
    }
}
