package org.jvirtio.benchmarks;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.blk.BlkIoFactory;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.NullBackend;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.host.QueueEngine;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.ring.SplitRingLayout;
import org.jvirtio.testkit.RecordingContext;
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
 * Device-side CPU cost of one virtio-blk request on the null device, single thread, no
 * transport: {@link QueueEngine#serve()} pops 32 requests (header 16 B, 4 KiB data, status 1 B, three
 * descriptors), parses each through the chain cursor, runs the backend operation (IN: zero-fills
 * 4 KiB of guest memory; OUT: nothing), writes the status byte, returns the chain, publishes
 * (every 8 and at the end), re-enables notifications with its fence and re-check. What the I/O
 * thread spends per request, minus its wake-ups.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class BlkQueueBenchmark {
    private RecordingContext context;
    private static final int SIZE = 256;
    private static final int BATCH = 32;

    @Param({"in", "out"})
    public String type;

    private Arena arena;
    private GuestMemory memory;
    private AvailReplay driverSide;
    private VirtioBlkDevice device;
    private QueueEngine queue;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(8 << 20, 4096);
        memory = GuestMemory.of(GuestRegion.of(0, MemoryMapping.ofSegment(seg)));
        device = new VirtioBlkDevice(new NullBackend(1L << 30), new BlkOptions(1, SIZE, "bench", false), BlkIoFactory.INLINE);
        long features = FeatureNegotiation.offered(device);
        context = new RecordingContext(features);
        device.activate(context);
        SplitRingLayout.Placement p = SplitRingLayout.place(0, SIZE);
        SplitQueueDriver driver = new SplitQueueDriver(memory, SIZE, p.desc(), p.avail(), p.used(), features, 0, 0);
        int t = type.equals("in") ? VirtioBlk.T_IN : VirtioBlk.T_OUT;
        java.util.List<Integer> hs = new java.util.ArrayList<>();
        for (int c = 0; driver.freeDescriptors() >= 3; c++) {
            long base = 0x100000 + (long) c * 0x2000;
            memory.writeU32(base, t);
            memory.writeU32(base + 4, 0);
            memory.writeU64(base + 8, 8L * c);
            hs.add(driver.add(new long[] {base, base + 0x1000, base + 16}, new int[] {16, 4096, 1}, 3, t == VirtioBlk.T_IN ? 1 : 2, c));
        }
        driverSide = new AvailReplay(memory, p.avail(), SIZE, hs.stream().mapToInt(Integer::intValue).toArray());
        SplitQueue ring = new SplitQueue(0);
        ring.activate(memory, SIZE, p.desc(), p.avail(), p.used(), features, 0, 0);
        QueueBinding binding = new QueueBinding(0, ring, null, Interrupt.NONE);
        queue = new QueueEngine(binding, device.openQueue(binding));
        queue.open();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (!context.resets.isEmpty()) {
            throw new IllegalStateException("the ring broke during the benchmark: " + context.resets);
        }
        queue.close();
        device.reset();
        memory.release();
        arena.close();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int serve32() {
        driverSide.offer(BATCH);
        queue.serve();
        return queue.inFlight();
    }
}
