package org.jvirtio.host;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.time.Duration;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueIo;
import org.jvirtio.api.QueueStats;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.PackedRingLayout;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.testkit.TestMemory;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The queue engine through a real ring in memfd memory, split and packed, with handlers that complete at
 * once, later, or not at all (they throw), on the caller's thread and on both hosts.
 */
@org.junit.jupiter.params.ParameterizedClass(name = "packed={0}")
@org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
class QueueEngineTest {
    static final int SIZE = 64;
    static final long BUFS = 0x10000;

    /** Whether the ring is packed (the same tests on both layouts). */
    @org.junit.jupiter.params.Parameter
    boolean packed;
    GuestMemory mem;
    QueueDriver driver;
    RingQueue queue;
    EventFd kick;
    EventFd call;
    final AtomicInteger interrupts = new AtomicInteger();

    @BeforeEach
    void setUp() throws Exception {
        mem = TestMemory.memfd(1 << 20);
        long f = features();
        driver = QueueDriver.at(mem, 0x1000, SIZE, f, 0, 0);
        queue = RingQueue.create(0, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS, f);
        queue.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f);
        kick = EventFd.create(true);
        call = EventFd.create(true);
    }

    @AfterEach
    void tearDown() {
        kick.close();
        call.close();
        mem.release();
    }

    long features() {
        return VirtioFeatures.RING_FEATURES | (packed ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0);
    }

    /** Asserts that the queue took {@code n} chains of one descriptor each from the ring (what a stop reports). */
    void assertTaken(int n, String what) {
        if (queue instanceof PackedQueue p) {
            assertEquals(PackedRingLayout.offWrap(n % SIZE, (n / SIZE) % 2 == 0), p.availState(), what);
        } else {
            assertEquals(n & 0xffff, ((SplitQueue) queue).nextAvail(), what);
        }
    }

    QueueBinding binding(boolean withKick) {
        return new QueueBinding(0, queue, withKick ? kick : null, () -> {
            interrupts.incrementAndGet();
            call.signal();
        });
    }

    /** Adds {@code n} chains of one 8-byte writable buffer each, token = i. */
    void add(int n) {
        addFrom(0, n);
    }

    /** Adds {@code n} chains of one 8-byte writable buffer each, tokens from {@code first}. */
    void addFrom(int first, int n) {
        for (int i = first; i < first + n; i++) {
            assertTrue(driver.add(new long[] {BUFS + 8L * i}, new int[] {8}, 1, 0, i) >= 0);
        }
        driver.publish();
    }

    /** The host a parameterized test names: "thread-per-queue" (and its variants), "io-threads", "io-threads-polling" (50 us). */
    static QueueHost host(String kind) {
        return switch (kind) {
            case "io-threads" -> new IoThreads(1, 0);
            case "io-threads-polling" -> new IoThreads(1, 50);
            default -> QueueHost.THREAD_PER_QUEUE;
        };
    }

    Map<Long, Integer> collect() {
        Map<Long, Integer> used = new HashMap<>();
        driver.pollUsed((head, token, length) -> assertNull(used.put(token, length), "token " + token + " twice"));
        return used;
    }

    @Test
    void synchronousHandlerAnswersEveryChainWithOneInterruptPerPublish() throws Exception {
        QueueEngine e = new QueueEngine(binding(false), (chain, slot) -> {
            chain.writer().writeU64(0x1122334455667788L);
            return 8;
        });
        e.open();
        add(20);
        while (e.serve()) {
            // a cold JVM on a loaded machine can spend the 2 ms serve budget on 8 chains: serve again, as a host does
        }
        Map<Long, Integer> used = collect();
        assertEquals(20, used.size());
        used.values().forEach(l -> assertEquals(8, l));
        assertEquals(0x1122334455667788L, mem.readU64(BUFS + 8 * 19));
        assertEquals(0, e.inFlight());
        assertEquals(20, e.requests());
        // 20 completions: published after 8, 16 and at the end of the drain; EVENT_IDX asks once
        // (the driver never moved used_event), so at most 3 interrupts and at least 1.
        assertTrue(interrupts.get() >= 1 && interrupts.get() <= 3, "interrupts: " + interrupts.get());
        e.close();
    }

    /**
     * A device whose chains stay in flight until reaped: each completes with 3 bytes written,
     * last in first out (out of order), when the engine reaps.
     */
    static QueueHandler asyncHandler() {
        Deque<Integer> pending = new ArrayDeque<>();
        QueueCompletions[] done = new QueueCompletions[1];
        return new QueueHandler() {
            @Override
            public void open(QueueCompletions completions) {
                done[0] = completions;
            }

            @Override
            public int start(DescriptorChain chain, int slot) {
                pending.push(slot);
                return PENDING;
            }

            @Override
            public QueueIo io() {
                return new QueueIo() {
                    @Override
                    public int pending() {
                        return pending.size();
                    }

                    @Override
                    public int reap() {
                        int n = 0;
                        while (!pending.isEmpty()) {
                            done[0].complete(pending.pop(), 3); // last in, first out: out of order
                            n++;
                        }
                        return n;
                    }
                };
            }
        };
    }

    /** An asynchronous handler: chains stay in flight until reaped, and slots name them. */
    @Test
    void pendingChainsCompleteThroughTheCompletionsInAnyOrder() throws Exception {
        QueueHandler h = asyncHandler();
        QueueEngine e = new QueueEngine(binding(false), h);
        e.open();
        add(10);
        while (e.serve()) {
            // the serve budget ran out (this thread descheduled mid-drain on a loaded machine): again, as a host does
        }
        assertEquals(10, e.inFlight());
        assertTrue(collect().isEmpty(), "nothing answered before completion");
        assertThrows(IllegalStateException.class, e::close, "closing with chains in flight");
        e.reapCompletions();
        Map<Long, Integer> used = collect();
        assertEquals(10, used.size());
        used.values().forEach(l -> assertEquals(3, l));
        assertEquals(0, e.inFlight());
        e.close();
    }

    /**
     * A handler asks the batch's time instead of reading the clock per chain: every chain of one
     * drain sees the engine's reading for that batch, which no chain added to, and the next serve
     * a later one.
     */
    @Test
    void chainsOfOneBatchSeeTheBatchTimeWithoutAClockReadEach() throws Exception {
        long[] now = {1_000};
        int[] reads = {0};
        java.util.List<Long> seen = new java.util.ArrayList<>();
        QueueCompletions[] done = new QueueCompletions[1];
        QueueEngine e = new QueueEngine(binding(false), new QueueHandler() {
            @Override
            public void open(QueueCompletions c) {
                done[0] = c;
            }

            @Override
            public int start(org.jvirtio.api.DescriptorChain chain, int slot) {
                seen.add(done[0].batchNanos());
                return 0;
            }
        });
        e.clock(() -> {
            reads[0]++;
            return now[0] += 1_000;
        });
        e.open();
        add(16);
        e.serve();
        assertEquals(16, seen.size());
        assertEquals(1, seen.stream().distinct().count(), "one time for the batch: " + seen);
        assertTrue(seen.get(0) > 1_000 && seen.get(0) <= now[0], "a reading the engine made: " + seen.get(0));
        assertTrue(reads[0] < 16, "the clock was read per batch, not per chain: " + reads[0]);
        addFrom(16, 1);
        e.serve();
        assertTrue(seen.get(16) > seen.get(0), "the next serve, a later time");
        assertEquals(17, collect().size());
    }

    /**
     * The latency histogram: a chain counts the time from the batch that took it to the reap that
     * completed it (the clock read once per batch); wake-ups are counted per serve.
     */
    @Test
    void latencyIsCountedFromTheBatchThatTookAChainToTheReapThatCompletedIt() throws Exception {
        QueueHandler h = asyncHandler();
        QueueStats stats = new QueueStats();
        long[] now = {0};
        QueueEngine e = new QueueEngine(binding(false).withStats(stats), h);
        e.clock(() -> now[0]);
        e.open();
        add(4);
        e.serve();
        now[0] += 3_000_000; // 3 ms later
        e.reapCompletions();
        assertEquals(4, collect().size());
        addFrom(4, 2);
        e.serve();
        now[0] += 500; // half a microsecond
        e.reapCompletions();
        assertEquals(2, collect().size());
        assertEquals(2, stats.wakeups());
        assertEquals(2, stats.latencyBucket(0), "two within a microsecond");
        int ms3 = QueueStats.bucketOf(3_000_000);
        assertEquals(4, stats.latencyBucket(ms3), "four in the bucket of 3 ms");
        assertTrue(QueueStats.bucketBoundSeconds(ms3) >= 0.003 && QueueStats.bucketBoundSeconds(ms3 - 1) < 0.003);
        assertEquals(4 * 3_000_000L + 2 * 500, stats.latencySumNanos());
        long total = 0;
        for (int i = 0; i < QueueStats.BUCKETS; i++) {
            total += stats.latencyBucket(i);
        }
        assertEquals(6, total, "every request counted once");
        // A request over the slow threshold (1 s by default) is a JFR event with its latency.
        java.nio.file.Path file = java.nio.file.Files.createTempFile("jvirtio", ".jfr");
        try (jdk.jfr.Recording rec = new jdk.jfr.Recording()) {
            rec.enable("org.jvirtio.SlowRequest");
            rec.start();
            addFrom(6, 2);
            e.serve();
            now[0] += org.jvirtio.api.jfr.SlowRequestEvent.THRESHOLD_NANOS + 1; // just over
            e.reapCompletions();
            addFrom(8, 1);
            e.serve();
            now[0] += org.jvirtio.api.jfr.SlowRequestEvent.THRESHOLD_NANOS; // not over
            e.reapCompletions();
            rec.stop();
            rec.dump(file);
            var events = jdk.jfr.consumer.RecordingFile.readAllEvents(file);
            assertEquals(2, events.size(), events.toString());
            for (var ev : events) {
                assertEquals("org.jvirtio.SlowRequest", ev.getEventType().getName());
                assertEquals(org.jvirtio.api.jfr.SlowRequestEvent.THRESHOLD_NANOS + 1, ev.getDuration("latency").toNanos());
                assertEquals(0, ev.getInt("queue"));
            }
        } finally {
            java.nio.file.Files.deleteIfExists(file);
        }
        assertEquals(3, collect().size());
        e.close();
    }

    /** A handler that throws (a device bug, a fault in guest memory) loses no chain and no slot. */
    @Test
    void aThrowingHandlerStillReturnsTheChainAndFreesItsSlot() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        QueueEngine e = new QueueEngine(binding(false), (chain, slot) -> {
            if (calls.incrementAndGet() % 2 == 0) {
                throw new InternalError("a fault occurred in an unsafe memory access");
            }
            return 1;
        });
        e.open();
        for (int round = 0; round < 3; round++) {
            add(SIZE);
            while (e.serve()) {
                // the serve budget ran out (logging the failures is slow): serve again, as a host does
            }
            Map<Long, Integer> used = collect();
            assertEquals(SIZE, used.size(), "round " + round);
            assertEquals(SIZE / 2, used.values().stream().filter(l -> l == 0).count());
            assertEquals(0, e.inFlight());
        }
        e.close();
    }

    @Test
    void completingASlotThatHoldsNothingIsIgnored() throws Exception {
        QueueCompletions[] done = new QueueCompletions[1];
        QueueEngine e = new QueueEngine(binding(false), new QueueHandler() {
            @Override
            public void open(QueueCompletions completions) {
                done[0] = completions;
            }

            @Override
            public int start(DescriptorChain chain, int slot) {
                return PENDING;
            }
        });
        e.open();
        add(1);
        e.serve();
        done[0].complete(5, 1);
        done[0].complete(-1, 1);
        done[0].complete(SIZE, 1);
        assertEquals(1, e.inFlight());
        done[0].complete(0, 1);
        done[0].complete(0, 1);
        e.reapCompletions();
        assertEquals(1, collect().size());
        assertEquals(0, e.inFlight());
    }

    /** A quiesced engine (the first step of stopping) pops nothing. */
    @Test
    void quiesceTakesNothingNew() throws Exception {
        QueueEngine e = new QueueEngine(binding(false), (chain, slot) -> 0);
        e.open();
        e.quiesce();
        add(4);
        assertFalse(e.serve());
        assertTrue(collect().isEmpty());
        assertEquals(4, driver.inFlight());
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread-per-queue", "io-threads", "io-threads-polling", "thread-per-queue-nofd"})
    void hostsServeKicksAndCompletionFdsAndStopDrains(String kind) throws Exception {
        QueueHost host = host(kind);
        boolean withKick = !kind.endsWith("nofd");
        AsyncHandler handler = new AsyncHandler();
        QueueEngine engine = new QueueEngine(binding(withKick), handler);
        QueueHost.Started run = host.start(engine);
        try {
            Map<Long, Integer> used = new HashMap<>();
            for (int round = 0; round < 50; round++) {
                add(1 + round % 7);
                kick.signal();
                long deadline = System.nanoTime() + 5_000_000_000L;
                while (driver.inFlight() > 0) {
                    if (!driver.enableInterrupts()) {
                        call.await(100);
                    }
                    driver.pollUsed((head, token, length) -> used.merge(token, length, Integer::sum));
                    assertTrue(System.nanoTime() < deadline, kind + " round " + round + ": " + driver.inFlight() + " never came back");
                }
            }
            // Leave some in flight: stop must wait for them and return them all.
            handler.hold = true;
            add(5);
            kick.signal();
            Await.await(() -> handler.started.get() >= handler.completed.get() + 5, Duration.ofSeconds(5), "the five chains started");
            Thread stopper = Thread.ofPlatform().start(run::stop);
            Thread.sleep(50);
            assertTrue(stopper.isAlive(), "stop waits for chains in flight");
            handler.release();
            stopper.join(5000);
            assertFalse(stopper.isAlive(), "stop returned once the chains completed");
            assertEquals(5, collect().size(), "every chain in flight went back");
            assertTrue(handler.closed, "the handler was closed");
        } finally {
            run.stop();
            host.close();
            handler.completion.close();
        }
    }

    /**
     * A device that waits for input (a console's receive queue, say): values come from another
     * thread, each fills one chain; with none left the device turns the chain away (NOT_NOW) and
     * is woken through its eventfd, resuming the queue from reap().
     */
    static final class InputHandler implements QueueHandler {
        final java.util.concurrent.ConcurrentLinkedQueue<Long> input = new java.util.concurrent.ConcurrentLinkedQueue<>();
        final EventFd arrived;
        final AtomicInteger turnedAway = new AtomicInteger();
        QueueCompletions completions;

        InputHandler() throws ErrnoException {
            arrived = EventFd.create(true);
        }

        /** From any thread. */
        void give(long value) {
            input.add(value);
            arrived.signal();
        }

        @Override
        public void open(QueueCompletions c) {
            completions = c;
        }

        @Override
        public int start(DescriptorChain chain, int slot) {
            Long v = input.poll();
            if (v == null) {
                turnedAway.incrementAndGet();
                return NOT_NOW;
            }
            chain.writer().writeU64(v);
            return 8;
        }

        @Override
        public QueueIo io() {
            return new QueueIo() {
                @Override
                public int completionFd() {
                    return arrived.fd();
                }

                @Override
                public int reap() {
                    completions.resume();
                    return 0;
                }
            };
        }
    }

    /**
     * A chain the device turns away stays the driver's: nothing in flight, the queue rests with
     * notifications off (the driver need not kick), kicks meanwhile take nothing, and the
     * device's resume() serves the ring again from the chain put back, in the driver's order.
     */
    @Test
    void aDeviceWithNothingForAChainPutsItBackAndResumesWhenInputArrives() throws Exception {
        InputHandler h = new InputHandler();
        QueueBinding b = binding(true);
        QueueStats stats = b.stats();
        QueueEngine e = new QueueEngine(b, h);
        e.open();
        try {
            h.give(100);
            h.give(101);
            add(5);
            assertFalse(e.serve());
            Map<Long, Integer> used = collect();
            assertEquals(Map.of(0L, 8, 1L, 8), used, "two chains filled");
            assertEquals(100, mem.readU64(BUFS));
            assertEquals(101, mem.readU64(BUFS + 8));
            assertTrue(e.resting());
            assertEquals(0, e.inFlight(), "nothing held");
            assertEquals(2, e.requests(), "a chain put back is no request");
            assertEquals(packed ? 1 : 3, queue.available(), "the other three are still in the ring (packed: at least one)");
            assertTaken(2, "what a stop would report");
            assertTrue(driver.add(new long[] {BUFS + 8L * 5}, new int[] {8}, 1, 0, 5) >= 0);
            assertFalse(driver.publish(), "resting, the queue asks for no kick");
            assertFalse(e.serve(), "a kick takes nothing");
            assertEquals(1, h.turnedAway.get(), "and asks the device nothing");
            assertTrue(collect().isEmpty());
            h.give(102);
            h.give(103);
            h.give(104);
            assertFalse(e.reapCompletions(), "resume() from reap serves at once");
            assertEquals(Map.of(2L, 8, 3L, 8, 4L, 8), collect());
            assertEquals(104, mem.readU64(BUFS + 8 * 4));
            assertTrue(e.resting(), "the sixth chain found no input");
            h.give(105);
            e.reapCompletions();
            assertEquals(Map.of(5L, 8), collect());
            assertFalse(e.resting(), "the ring ran dry before the input did");
            assertEquals(2, stats.rests(), "rested twice");
            assertEquals("stats: q0 requests=6 bytes=0 errors=0 in-flight=0 rests=2", QueueStats.describe(new QueueStats[] {stats}));
            assertTrue(queue.available() == 0 && e.inFlight() == 0);
            assertTrue(driver.add(new long[] {BUFS + 8L * 6}, new int[] {8}, 1, 0, 6) >= 0);
            assertTrue(driver.publish(), "awake again, the queue wants kicks");
            e.quiesce();
            assertEquals(0, e.inFlight(), "a stop finds nothing to wait for");
        } finally {
            e.close();
            h.arrived.close();
        }
    }

    /**
     * {@code serveOneNow} (another queue's handler on this thread serving this queue's next chain):
     * one chain taken and started as a drain would, its used element published in the thread's
     * turn that {@code wakeHere} asked for (or at once where there is none), nothing taken from a
     * stopping queue, and a chain the device turns away back in the ring.
     */
    @Test
    void serveOneNowStartsOneChainAndPublishesInTheThreadsTurnOrAtOnce() throws Exception {
        InputHandler h = new InputHandler();
        boolean[] turn = {true};
        int[] asked = {0};
        QueueEngine e = new QueueEngine(binding(false), h);
        e.wakeHere(() -> {
            asked[0]++;
            return turn[0];
        });
        e.open();
        try {
            add(4);
            h.give(7);
            assertTrue(e.serveOneNow());
            assertEquals(1, asked[0], "a turn asked for");
            assertTrue(collect().isEmpty(), "published in that turn, not yet");
            assertTaken(1, "one chain taken");
            assertEquals(1, e.requests());
            assertFalse(e.reapCompletions());
            assertEquals(Map.of(0L, 8), collect(), "the turn published it");
            assertEquals(7, mem.readU64(BUFS));
            turn[0] = false;
            h.give(8);
            assertTrue(e.serveOneNow());
            assertEquals(Map.of(1L, 8), collect(), "no turn to publish in: published at once");
            assertFalse(e.serveOneNow(), "no input: the device puts the chain back");
            assertTaken(2, "back in the ring");
            assertEquals(0, e.inFlight());
            h.give(9);
            e.quiesce();
            assertFalse(e.serveOneNow(), "a stopping queue takes nothing");
            assertTaken(2, "nothing taken");
        } finally {
            e.close();
            h.arrived.close();
        }
    }

    /** The same on both hosts, with the input arriving from another thread while the driver waits. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread-per-queue", "io-threads", "io-threads-polling"})
    void inputFromAnotherThreadReachesTheChainsInOrderAndAStopWhileRestingIsImmediate(String kind) throws Exception {
        QueueHost host = host(kind);
        InputHandler h = new InputHandler();
        QueueEngine engine = new QueueEngine(binding(true), h);
        QueueHost.Started run = host.start(engine);
        Thread producer = null;
        try {
            add(32);
            kick.signal();
            producer = Thread.ofPlatform().start(() -> {
                for (long v = 0; v < 200; v++) {
                    h.give(1000 + v);
                    if (v % 16 == 0) {
                        java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
                    }
                }
            });
            List<Long> values = new ArrayList<>();
            long deadline = System.nanoTime() + 10_000_000_000L;
            int next = 32;
            while (values.size() < 200) {
                assertTrue(System.nanoTime() < deadline, kind + ": " + values.size() + " of 200 values arrived");
                if (!driver.enableInterrupts()) {
                    call.await(100);
                }
                int[] done = {0};
                driver.pollUsed((head, token, length) -> {
                    assertEquals(8, length);
                    values.add(mem.readU64(BUFS + 8 * (token % SIZE)));
                    done[0]++;
                });
                // The driver gives each returned buffer back, as a receive queue's driver does.
                for (int k = 0; k < done[0] && next < 200 + 32; k++, next++) {
                    assertTrue(driver.add(new long[] {BUFS + 8L * (next % SIZE)}, new int[] {8}, 1, 0, next) >= 0);
                }
                if (driver.publish()) {
                    kick.signal();
                }
            }
            for (int v = 0; v < 200; v++) {
                assertEquals(1000L + v, values.get(v), "value " + v);
            }
            assertTrue(h.turnedAway.get() > 0, "the device ran out of input at least once");
            // Resting with 32 buffers offered and no input: a stop has nothing to wait for.
            Await.await(engine::resting, Duration.ofSeconds(5), "the queue rests");
            assertTrue(run.stop(60_000_000_000L));
            assertEquals(0, engine.inFlight());
            assertEquals(32, driver.inFlight(), "the buffers are still the driver's, in the ring");
            assertTaken(200, "and a stop reports the 200 taken");
        } finally {
            if (producer != null) {
                producer.join(5000);
            }
            run.stop();
            host.close();
            h.arrived.close();
        }
    }

    /**
     * A device that serves on a pool of its own and completes through a {@link
     * org.jvirtio.api.CompletionMailbox}: on both hosts, 2,000 requests come back once each, with
     * what the pool's threads wrote, and the handler closes with nothing in flight.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread-per-queue", "io-threads", "io-threads-polling"})
    void completionsFromAPoolThroughAMailboxComeBackOnceEach(String kind) throws Exception {
        QueueHost host = host(kind);
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(3);
        boolean[] closed = {false};
        QueueHandler h = new QueueHandler() {
            org.jvirtio.api.CompletionMailbox mailbox;
            QueueCompletions completions;

            @Override
            public void open(QueueCompletions c) throws java.io.IOException {
                completions = c;
                mailbox = new org.jvirtio.api.CompletionMailbox(SIZE, c);
            }

            @Override
            public QueueIo io() {
                return mailbox;
            }

            @Override
            public int start(DescriptorChain chain, int slot) {
                pool.execute(() -> {
                    chain.writer().writeU64(0xabcd_0000L + chain.head());
                    mailbox.complete(slot, 8);
                });
                return PENDING;
            }

            @Override
            public void close() {
                mailbox.close();
                closed[0] = true;
            }
        };
        QueueEngine engine = new QueueEngine(binding(true), h);
        QueueHost.Started run = host.start(engine);
        try {
            Map<Long, Integer> used = new HashMap<>();
            int token = 0;
            for (int round = 0; round < 40; round++) {
                int n = 1 + (round * 13) % SIZE;
                n = Math.min(n, 50);
                for (int i = 0; i < n; i++, token++) {
                    assertTrue(driver.add(new long[] {BUFS + 8L * (token % SIZE)}, new int[] {8}, 1, 0, token) >= 0);
                }
                if (driver.publish()) {
                    kick.signal();
                }
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (driver.inFlight() > 0) {
                    assertTrue(System.nanoTime() < deadline, kind + " round " + round + ": " + driver.inFlight() + " never came back");
                    if (!driver.enableInterrupts()) {
                        call.await(100);
                    }
                    driver.pollUsed((head, t, length) -> {
                        assertNull(used.put(t, length), "token " + t + " twice");
                        assertEquals(0xabcd_0000L + head, mem.readU64(BUFS + 8 * (t % SIZE)));
                    });
                }
            }
            assertEquals(token, used.size());
            used.values().forEach(l -> assertEquals(8, l));
            assertTrue(run.stop(10_000_000_000L));
            assertTrue(closed[0], "closed with nothing in flight");
        } finally {
            run.stop();
            host.close();
            pool.shutdownNow();
        }
    }

    /**
     * Storage that never answers: a stop gives up at its limit instead of waiting forever (issue
     * 14, item 3; before, stop() had no limit and this test hung). The ring is handed back with
     * nothing written for the abandoned chains, the engine stays open (its memory must stay
     * mapped) until they complete, and their late completions reach neither the used ring nor
     * the interrupt.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread-per-queue", "io-threads"})
    void aStopGivesUpAtItsLimitAndLateCompletionsGoNowhere(String kind) throws Exception {
        QueueHost host = host(kind);
        AsyncHandler handler = new AsyncHandler();
        handler.hold = true;
        QueueEngine engine = new QueueEngine(binding(true), handler);
        QueueHost.Started run = host.start(engine);
        try {
            add(3);
            kick.signal();
            Await.await(() -> handler.started.get() >= 3, Duration.ofSeconds(5), "the chains were started");
            int usedIdx = mem.readU16(driver.usedAddr() + 2);
            int interruptsBefore = interrupts.get();
            java.util.concurrent.atomic.AtomicBoolean closedSeen = new java.util.concurrent.atomic.AtomicBoolean();
            long t0 = System.nanoTime();
            assertFalse(run.stop(200_000_000L), "the stop gave up");
            long took = System.nanoTime() - t0;
            assertTrue(took < 3_000_000_000L, "the stop returned within its limit and the handshake: " + took / 1_000_000 + " ms");
            assertTrue(engine.abandoned());
            run.whenClosed(() -> closedSeen.set(true));
            assertFalse(closedSeen.get(), "the engine stays open while its chains are out");
            assertFalse(handler.closed);
            handler.release();
            Await.await(closedSeen::get, Duration.ofSeconds(5), "the engine closed after the late completions");
            assertEquals(3, handler.completed.get(), "the device finished its requests");
            assertTrue(handler.closed, "then the handler was closed");
            assertEquals(usedIdx, mem.readU16(driver.usedAddr() + 2), "late completions were not published");
            assertEquals(interruptsBefore, interrupts.get(), "nor interrupted the driver");
            assertTrue(run.stop(0), "a second stop finds it closed");
        } finally {
            handler.release();
            host.close();
            handler.completion.close();
        }
    }

    /**
     * A ring that never runs dry (here the handler adds a chain for every one it gets, as a used
     * ring laid over the avail ring does) must not keep a host's start() from returning: the soak
     * (bench/soak.sh) found the vhost-user control thread blocked forever in ThreadPerQueueHost's
     * start, which served until the ring was empty before returning. Stop still works.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"thread-per-queue", "io-threads"})
    void aRingThatNeverRunsDryDoesNotKeepStartFromReturning(String kind) throws Exception {
        QueueHost host = host(kind);
        AtomicInteger served = new AtomicInteger();
        QueueEngine engine = new QueueEngine(binding(true), (chain, slot) -> {
            served.incrementAndGet();
            // the device's own completion frees the descriptor first (it is returned below), so
            // add one more from the driver's free list only when there is room
            if (driver.inFlight() < SIZE - 1) {
                driver.add(new long[] {BUFS}, new int[] {8}, 1, 0, 0);
                driver.publish();
            }
            driver.pollUsed((h, t, l) -> { });
            return 0;
        });
        add(4);
        long t0 = System.nanoTime();
        Thread starter = Thread.ofPlatform().start(() -> {
            QueueHost.Started run = host.start(engine);
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            assertTrue(run.stop(5_000_000_000L), "stopped");
        });
        starter.join(10_000);
        boolean alive = starter.isAlive();
        host.close();
        assertFalse(alive, kind + ": start() (or stop) never returned");
        assertTrue(System.nanoTime() - t0 < 5_000_000_000L);
        assertTrue(served.get() > 4, "the ring kept feeding the device: " + served.get());
    }

    /** Completes every chain on the next reap, through an eventfd the host watches. */
    static final class AsyncHandler implements QueueHandler, QueueIo {
        final EventFd completion;
        final List<Integer> ready = new ArrayList<>();
        final AtomicInteger started = new AtomicInteger();
        final AtomicInteger completed = new AtomicInteger();
        volatile boolean hold;
        volatile boolean releasing;
        volatile boolean closed;
        private QueueCompletions done;

        AsyncHandler() throws ErrnoException {
            completion = EventFd.create(true);
        }

        @Override
        public void open(QueueCompletions completions) {
            done = completions;
        }

        @Override
        public int start(DescriptorChain chain, int slot) {
            synchronized (ready) {
                ready.add(slot);
            }
            started.incrementAndGet();
            if (!hold) {
                completion.signal();
            }
            return PENDING;
        }

        @Override
        public QueueIo io() {
            return this;
        }

        @Override
        public int completionFd() {
            return completion.fd();
        }

        @Override
        public int pending() {
            synchronized (ready) {
                return hold && !releasing ? 0 : ready.size();
            }
        }

        @Override
        public int reap() {
            if (hold && !releasing) {
                return 0;
            }
            List<Integer> now;
            synchronized (ready) {
                now = new ArrayList<>(ready);
                ready.clear();
            }
            for (int slot : now) {
                done.complete(slot, 2);
                completed.incrementAndGet();
            }
            return now.size();
        }

        void release() {
            releasing = true;
            completion.signal();
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    // ---- busy-polling paid for by the requests served (QueueEngine.pollCredit) ----
    // A fake clock that advances 1 us each time the engine reads it makes the polls countable:
    // a poll of W us reads it about W times.

    /** A synchronous engine on this test's queue with a window of 10 us and the given credit. */
    QueueEngine pollingEngine(long[] now, long creditNanos) throws Exception {
        QueueEngine e = new QueueEngine(binding(false), (chain, slot) -> 8);
        e.polling().window(10);
        e.polling().creditPerRequest(creditNanos);
        e.clock(() -> now[0] += 1_000);
        e.open();
        return e;
    }

    /** Makes {@code n} chains available, serves them, checks that all came back: how long it took (fake us). */
    /** A second queue (index 1) on its own ring at 0x8000 of the same memory, opened, with its driver: a sibling for poll-group tests. */
    record Sibling(QueueDriver driver, RingQueue ring, QueueEngine engine) {
    }

    /** The queues of one thread, as the I/O-threads host groups them. */
    static PollGroup groupOf(QueueEngine... engines) {
        PollGroup g = new PollGroup();
        for (QueueEngine e : engines) {
            g.add(e);
        }
        return g;
    }

    Sibling sibling(QueueHandler handler) throws Exception {
        QueueDriver d2 = QueueDriver.at(mem, 0x8000, SIZE, features(), 0, 0);
        RingQueue q2 = RingQueue.create(1, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS, features());
        q2.activate(mem, SIZE, d2.descAddr(), d2.availAddr(), d2.usedAddr(), features());
        QueueEngine other = new QueueEngine(new QueueBinding(1, q2, null, () -> { }), handler);
        other.open();
        return new Sibling(d2, q2, other);
    }

    long serveBatch(QueueEngine e, long[] now, int n) {
        add(n);
        long t = servedFor(e, now);
        assertEquals(n, collect().size());
        return t;
    }

    /** How long (fake us) one serve() took, serving again while it yields. */
    static long servedFor(QueueEngine e, long[] now) {
        long before = now[0];
        while (e.serve()) {
            // yielded: serve again, as a host does
        }
        return (now[0] - before) / 1_000;
    }

    @Test
    void requestsServedEarnAPollPastTheWindowWhichUsesTheCreditUp() throws Exception {
        long[] now = {0};
        QueueEngine e = pollingEngine(now, 2_000);
        long t = serveBatch(e, now, 50);
        // 50 requests earned 100 us: the poll after them ran about 100 us, not the 10 us window
        assertTrue(t >= 100 && t < 120, "polled for " + t + " us");
        // ... and used up what it spent past the window (90 us of the 100)
        assertTrue(e.polling().creditNanos() <= 10_000, "credit left: " + e.polling().creditNanos());
        // With nothing served since, the next wait polls only the window (which QEMU's rule has
        // just halved: the last wait was longer than its maximum).
        long t2 = servedFor(e, now);
        assertTrue(t2 < 16, "polled for " + t2 + " us");
        e.close();
    }

    @Test
    void creditBelowTheMinimumIsKeptNotSpentAndALongWaitForfeitsIt() throws Exception {
        long[] now = {0};
        QueueEngine e = pollingEngine(now, 2_000);
        long t = serveBatch(e, now, 20); // earns 40 us: less than a credit-paid poll's minimum
        assertTrue(t >= 10 && t < 20, "polled for " + t + " us");
        assertEquals(40_000, e.polling().creditNanos(), "kept for later");
        now[0] += 50_000; // a short wait: the bank stays
        servedFor(e, now);
        assertEquals(40_000, e.polling().creditNanos());
        now[0] += 300_000; // a wait no bank could have covered: the queue is not busy
        servedFor(e, now);
        assertEquals(0, e.polling().creditNanos(), "forfeited");
        e.close();
    }

    @Test
    void withoutCreditOrWithPollingOffTheWindowIsAllThereIs() throws Exception {
        long[] now = {0};
        QueueEngine e = pollingEngine(now, 0);
        long t = serveBatch(e, now, 50);
        assertTrue(t >= 10 && t < 20, "polled for " + t + " us");
        e.close();

        QueueEngine off = pollingEngine(now, 2_000);
        off.polling().window(0);
        long t0 = serveBatch(off, now, 50);
        assertTrue(t0 < 10, "polling off, yet it polled for " + t0 + " us");
        assertEquals(0, off.polling().creditNanos(), "no credit is earned with polling off");
        off.close();
    }

    @Test
    void creditIsBankedUpToTheCap() throws Exception {
        long[] now = {0};
        QueueEngine e = pollingEngine(now, 1_000_000);
        long t = serveBatch(e, now, 40);
        long cap = PollingPolicy.POLL_CREDIT_CAP_NANOS / 1_000;
        assertTrue(t >= cap && t < cap + 20, "polled for " + t + " us with a cap of " + cap);
        e.close();
    }

    @Test
    void chainsArrivingDuringACreditPaidPollAreServedWithoutASleepAndCostOnlyTheWait() throws Exception {
        long[] now = {0};
        long[] arriveAt = {Long.MAX_VALUE};
        QueueEngine e = new QueueEngine(binding(false), (chain, slot) -> 8);
        e.polling().window(10);
        e.polling().creditPerRequest(2_000);
        e.clock(() -> {
            now[0] += 1_000;
            if (now[0] >= arriveAt[0]) {
                arriveAt[0] = Long.MAX_VALUE;
                addFrom(50, 8); // the driver's next batch, about 60 us into the poll
            }
            return now[0];
        });
        e.open();
        add(50);
        arriveAt[0] = 70_000; // the first drain reads the clock a few times: about 60 us after the poll starts
        long t = servedFor(e, now);
        assertEquals(58, collect().size(), "the batch that came during the poll was served in the same serve()");
        // credit: 100 us earned, about 50 us spent past the window while waiting, 16 earned by the 8
        long credit = e.polling().creditNanos() / 1_000;
        assertTrue(credit >= 10 && credit <= 70, "credit left: " + credit + " us (served for " + t + " us)");
        e.close();
    }

    @Test
    void aPollStopsForAnotherQueueOfItsThreadAndPollsPastTheWindowOnlyWhileTheOthersAreIdle() throws Exception {
        List<Integer> pendingSlots = new ArrayList<>();
        Sibling sib = sibling((chain, slot) -> {
            pendingSlots.add(slot);
            return QueueHandler.PENDING; // stays in flight
        });
        QueueDriver d2 = sib.driver();
        QueueEngine other = sib.engine();
        long[] now = {0};
        QueueEngine e = pollingEngine(now, 2_000);
        e.polling().window(30);
        PollGroup g = groupOf(e, other);

        // The other queue idle: the poll runs on credit, past the window.
        long idle = serveBatch(e, now, 50);
        assertTrue(idle >= 100 && idle < 130, "polled for " + idle + " us");

        // The other queue has a request in flight: only the window (its completion must not wait).
        assertTrue(d2.add(new long[] {0x20000}, new int[] {8}, 1, 0, 1) >= 0);
        d2.publish();
        while (other.serve()) {
            // take it
        }
        assertEquals(1, other.inFlight());
        e.polling().window(30); // the adaptive window back at its maximum (the long wait above shrank it, QEMU's rule)
        long busy = serveBatch(e, now, 50);
        assertTrue(busy >= 30 && busy < 50, "polled for " + busy + " us");

        // The other queue has a chain to take: the poll gives the thread up at once.
        assertTrue(d2.add(new long[] {0x20008}, new int[] {8}, 1, 0, 2) >= 0);
        d2.publish();
        e.polling().window(30);
        long wanted = serveBatch(e, now, 50);
        assertTrue(wanted < 20, "polled for " + wanted + " us while another queue waited");

        g.remove(other);
        other.quiesce();
        for (int slot : pendingSlots) {
            other.complete(slot, 0);
        }
        other.close();
        e.close();
    }

    /**
     * A queue of the thread woken by another's handler (a switch port's receive queue given a
     * frame by a transmit queue: {@link QueueEngine#wakeHere}, its reap among the thread's tasks)
     * wants the thread although its ring offers nothing new: a poll gives the thread up at once,
     * or the frame would wait for the end of the poller's window.
     */
    @Test
    void aPollGivesTheThreadUpToAQueueOfItsThreadWokenHere() throws Exception {
        QueueEngine other = sibling((chain, slot) -> 8).engine();
        long[] now = {0};
        QueueEngine e = pollingEngine(now, 2_000);
        e.polling().window(30);
        PollGroup g = groupOf(e, other);

        g.woken(other, true);
        long woken = serveBatch(e, now, 50);
        assertTrue(woken < 20, "polled for " + woken + " us while a wake-up of another queue waited");

        g.woken(other, false); // its reap ran: idle again, the poll runs on credit past the window
        e.polling().window(30);
        long idle = serveBatch(e, now, 50);
        assertTrue(idle >= 100, "polled for " + idle + " us"); // (the credit the first batch earned, too)

        g.woken(other, true);
        g.remove(other); // a removed queue's wake-up is forgotten with it
        e.polling().window(30);
        long alone = serveBatch(e, now, 50);
        assertTrue(alone >= 100, "polled for " + alone + " us");
        other.close();
        e.close();
    }

    /**
     * A poll looks at the other queues' avail->idx: a hostile one there (1000 entries ahead of a
     * 64-entry ring) breaks that queue, as its own pop would, and nothing else. The polling
     * queue serves all its chains and still polls on credit (the broken queue has nothing to take).
     */
    @Test
    void aHostileAvailIndexOnAnotherQueueOfTheThreadBreaksThatQueueAloneDuringAPoll() throws Exception {
        // A packed ring has no avail index: a poll reads only the next descriptor's flags, and a
        // hostile chain breaks the queue at its pop (PackedQueueTest).
        org.junit.jupiter.api.Assumptions.assumeFalse(packed, "split's avail index");
        Sibling sib = sibling((chain, slot) -> 8);
        QueueDriver d2 = sib.driver();
        RingQueue q2 = sib.ring();
        QueueEngine other = sib.engine();
        long[] now = {0};
        QueueEngine e = pollingEngine(now, 2_000);
        PollGroup g = groupOf(e, other);
        mem.writeU16(d2.availAddr() + 2, 1000);

        long t = serveBatch(e, now, 50);
        assertTrue(q2.isBroken(), "the hostile ring is stopped");
        assertEquals(org.jvirtio.ring.RingViolation.Reason.AVAIL_INDEX_TOO_FAR, q2.violation().reason());
        assertTrue(t >= 100 && t < 130, "polled for " + t + " us");
        assertFalse(queue.isBroken(), "the polling queue is untouched");
        assertFalse(other.serve(), "the broken queue takes nothing");
        assertEquals(0, other.inFlight());
        serveBatch(e, now, 10); // and the polling queue goes on serving
        g.remove(other);
        other.close();
        e.close();
    }
}
