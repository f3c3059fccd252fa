package org.jvirtio.benchmarks;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.ring.SplitRingLayout;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;


/**
 * Device-side cost of one request: pop (with full validation and translation) + add-used +
 * publish, single thread. The driver's part is reduced to writing one avail entry and the index:
 * the descriptor chains are laid out once in setup, as a guest that reuses its descriptors.
 *
 * <p>{@code single}: one pop, one add-used, one publish (with its interrupt check) per request.
 * {@code batch32}: 32 requests per avail-index read and per publish, as the data plane does.
 * {@code inflight}: with the inflight region's marks and clears (issue 12), or without.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class SplitQueueBenchmark {
    private static final int SIZE = 256;
    private static final int BATCH = 32;

    /** 1, 3 or 8 direct descriptors, or a 3-entry indirect table. */
    @Param({"direct1", "direct3", "direct8", "indirect3"})
    public String layout;

    /** With the vhost-user inflight region attached (what QEMU sets up for vhost-user-blk), or without. */
    @Param({"false", "true"})
    public boolean inflight;

    /**
     * Whether the driver writes each chain's descriptors again before offering its head, as
     * Linux's split driver does for every request (and as a packed driver must: the packed
     * benchmark's driver always does), or offers heads over descriptors written once.
     */
    @Param({"false", "true"})
    public boolean rewrite;

    private Arena arena;
    private GuestMemory memory;
    private SplitQueue queue;
    private AvailReplay driverSide;
    /** The same replay into an avail ring nobody reads: where {@link #driverOnly32} writes. */
    private AvailReplay shadowSide;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(4 << 20, 4096);
        memory = GuestMemory.of(GuestRegion.of(0, MemoryMapping.ofSegment(seg)));
        long features = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.EVENT_IDX, VirtioFeatures.INDIRECT_DESC);
        SplitRingLayout.Placement p = SplitRingLayout.place(0, SIZE);
        long indirectArea = 0x10000;
        SplitQueueDriver driver = new SplitQueueDriver(memory, SIZE, p.desc(), p.avail(), p.used(), features, indirectArea, 8);
        int n = switch (layout) {
            case "direct1" -> 1;
            case "direct3", "indirect3" -> 3;
            case "direct8" -> 8;
            default -> throw new IllegalArgumentException(layout);
        };
        boolean indirect = layout.startsWith("indirect");
        long[] addrs = new long[n];
        int[] lens = new int[n];
        // virtio-blk shape: 16-byte header, data, 1-byte status
        java.util.List<Integer> hs = new java.util.ArrayList<>();
        for (int c = 0; ; c++) {
            if (driver.freeDescriptors() < (indirect ? 1 : n) || c >= SIZE) {
                break;
            }
            for (int i = 0; i < n; i++) {
                addrs[i] = 0x100000 + (long) c * 0x2000 + i * 512L;
                lens[i] = n == 1 ? 512 : (i == 0 ? 16 : (i == n - 1 ? 1 : 512));
            }
            hs.add(indirect ? driver.addIndirect(addrs, lens, n, 1, c) : driver.add(addrs, lens, n, 1, c));
        }
        // Forget the driver's avail entries: the benchmark republishes heads itself.
        int[] heads = hs.stream().mapToInt(Integer::intValue).toArray();
        driverSide = new AvailReplay(memory, p.avail(), SIZE, heads, p.desc(), rewrite ? p.desc() : -1);
        shadowSide = new AvailReplay(memory, 0x200000, SIZE, heads, p.desc(), rewrite ? 0x210000 : -1);
        queue = new SplitQueue(0);
        queue.activate(memory, SIZE, p.desc(), p.avail(), p.used(), features, 0, 0);
        if (inflight) {
            queue.attachInflight(arena.allocate(org.jvirtio.ring.SplitInflight.queueRegionSize(SIZE), 64));
        }
        queue.disableNotifications();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        memory.release();
        arena.close();
    }

    private void offer(int count) {
        driverSide.offer(count);
    }

    /**
     * The driver's part of {@link #batch32} alone (the same stores into an avail ring nobody
     * reads), as {@code PackedQueueBenchmark.driverOnly32}: take it off {@code batch32} for the
     * device's cost per request.
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int driverOnly32() {
        shadowSide.offer(BATCH);
        return BATCH;
    }

    @Benchmark
    public boolean single() {
        offer(1);
        DescriptorChain c = queue.pop();
        queue.addUsed(c, 0); // 0: direct1 chains have no writable byte
        return queue.publishUsed();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public boolean batch32() {
        offer(BATCH);
        DescriptorChain c;
        while ((c = queue.pop()) != null) {
            queue.addUsed(c, 0); // 0: direct1 chains have no writable byte
        }
        return queue.publishUsed();
    }
}
