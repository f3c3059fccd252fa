package org.jvirtio.benchmarks;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.ring.RingQueue;

/**
 * Split and packed rings as they run in a deployment: the driver on one CPU, the device on the
 * other, both polling (no notifications, no eventfds), so that each ring word a request touches
 * crosses between the two CPUs' caches. The single-thread benchmarks ({@link SplitQueueBenchmark},
 * {@link PackedQueueBenchmark}) keep every line in one cache and so count only instructions;
 * what the packed layout saves is cache lines crossed (one 16-byte descriptor per buffer, read
 * and written in place, against split's descriptor table, available ring and used ring), which
 * only shows here.
 *
 * <p>The device pops every available chain, marks it used with its length and publishes once per
 * batch; the driver adds requests while it has free descriptors and reaps used buffers.
 * The driver keeps at most DEPTH requests in flight (a guest's queue depth). Neither touches the
 * buffers. Layouts and chain shapes alternate in short runs (the first round is a warm-up and not
 * printed), so that a noisy machine's slow moments fall on all of them; it prints each run's ns
 * per request (elapsed time over requests completed: the pair's throughput, whichever side is
 * slower) and the chains the device found per batch (DEPTH: the two sides take turns; far more:
 * the device never ran dry, the driver refilling the ring behind it as it went), and the medians.
 *
 * <pre>
 * java -cp benchmarks.jar org.jvirtio.benchmarks.CrossCpuRing [ROUNDS] [MILLIS] [SHAPES] [DEPTH] [inflight]
 *   ROUNDS  measured rounds (default 6), MILLIS per run (default 500),
 *   SHAPES  comma-separated of direct1,direct3,direct8,indirect3 (default all),
 *   DEPTH   requests the driver keeps in flight at most (default 32, as a guest's queue depth),
 *   inflight: with the vhost-user inflight region attached to the device queue (as vhost-user-blk)
 * </pre>
 */
public final class CrossCpuRing {
    private static final int SIZE = 256;
    private static final long RING = 0x1000;
    private static final long INDIRECT = 0x20000;
    private static final long DATA = 0x100000;

    private CrossCpuRing() {
    }

    /** One run's outcome. */
    record Run(double nsPerRequest, double batch) {
    }

    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 6;
        int millis = args.length > 1 ? Integer.parseInt(args[1]) : 500;
        List<String> shapes = args.length > 2 ? List.of(args[2].split(",")) : List.of("direct1", "direct3", "direct8", "indirect3");
        int depth = args.length > 3 ? Integer.parseInt(args[3]) : 32;
        boolean inflight = args.length > 4 && args[4].equals("inflight");
        if (rounds < 1 || millis < 10 || depth < 1 || depth > SIZE) {
            throw new IllegalArgumentException("ROUNDS >= 1, MILLIS >= 10, 1 <= DEPTH <= " + SIZE);
        }
        String[] layouts = {"split", "packed"};
        List<List<Run>> results = new ArrayList<>();
        for (int i = 0; i < shapes.size() * layouts.length; i++) {
            results.add(new ArrayList<>());
        }
        for (int round = 0; round <= rounds; round++) {
            for (int s = 0; s < shapes.size(); s++) {
                for (int l = 0; l < layouts.length; l++) {
                    int li = (round & 1) == 0 ? l : layouts.length - 1 - l; // alternate which layout goes first
                    Run r = run(layouts[li].equals("packed"), shapes.get(s), depth, inflight, millis);
                    if (round > 0) {
                        results.get(s * layouts.length + li).add(r);
                        System.out.printf("round %d %-9s %-6s %7.1f ns/request, %5.1f chains per device batch%n", round, shapes.get(s), layouts[li],
                                r.nsPerRequest(), r.batch());
                    }
                }
            }
        }
        System.out.printf("%nmedians of %d rounds, %d ms each, queue size %d, at most %d requests in flight%s:%n", rounds, millis, SIZE, depth,
                inflight ? ", inflight region" : "");
        System.out.println("| chain | split ns/request | packed ns/request | packed / split | chains per device batch, split / packed |");
        System.out.println("|---|---|---|---|---|");
        for (int s = 0; s < shapes.size(); s++) {
            double split = median(results.get(s * 2), true);
            double packed = median(results.get(s * 2 + 1), true);
            System.out.printf("| %s | %.1f | %.1f | %.2f | %.1f / %.1f |%n", shapes.get(s), split, packed, packed / split,
                    median(results.get(s * 2), false), median(results.get(s * 2 + 1), false));
        }
    }

    private static double median(List<Run> runs, boolean ns) {
        double[] v = runs.stream().mapToDouble(r -> ns ? r.nsPerRequest() : r.batch()).sorted().toArray();
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    static Run run(boolean packed, String shape, int depth, boolean inflight, int millis) throws Exception {
        long features = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.EVENT_IDX, VirtioFeatures.INDIRECT_DESC)
                | (packed ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0);
        int n = switch (shape) {
            case "direct1" -> 1;
            case "direct3", "indirect3" -> 3;
            case "direct8" -> 8;
            default -> throw new IllegalArgumentException("shape " + shape + ": direct1, direct3, direct8 or indirect3");
        };
        boolean indirect = shape.startsWith("indirect");
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(4 << 20, 4096);
            GuestMemory memory = GuestMemory.of(GuestRegion.of(0, MemoryMapping.ofSegment(seg)));
            try {
                if (RING + QueueDriver.ringBytes(SIZE, features) > INDIRECT) {
                    throw new IllegalStateException("ring overlaps the indirect tables");
                }
                QueueDriver driver = QueueDriver.at(memory, RING, SIZE, features, INDIRECT, 8);
                RingQueue device = RingQueue.create(0, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS, features);
                AtomicReference<Throwable> failure = new AtomicReference<>();
                device.setViolationListener((q, v) -> failure.compareAndSet(null, new IllegalStateException(v.message())));
                device.activate(memory, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), features);
                if (inflight) {
                    device.attachInflight(arena.allocate(RingQueue.inflightRegionSize(packed, SIZE), 64), SIZE);
                }
                device.disableNotifications();
                driver.disableInterrupts();
                long[] addrs = new long[n];
                int[] lens = new int[n];
                for (int i = 0; i < n; i++) {
                    addrs[i] = DATA + i * 512L; // virtio-blk's shape: a header, data, a status byte
                    lens[i] = n == 1 ? 512 : (i == 0 ? 16 : (i == n - 1 ? 1 : 512));
                }
                int need = indirect ? 1 : n;
                AtomicBoolean stop = new AtomicBoolean();
                long[] counts = new long[2]; // the device's: requests, batches
                int written = n == 1 ? 0 : 1;
                Thread dev = Thread.ofPlatform().name("cross-cpu-device").start(() -> {
                    try {
                        deviceLoop(device, written, stop, counts);
                    } catch (Throwable t) {
                        failure.compareAndSet(null, t);
                    }
                });

                QueueDriver.UsedHandler ignore = (head, token, len) -> { };
                long t0 = System.nanoTime();
                long end = t0 + millis * 1_000_000L;
                long checks = 0;
                while (failure.get() == null) {
                    while (driver.freeDescriptors() >= need && driver.inFlight() < depth) {
                        int h = indirect ? driver.addIndirect(addrs, lens, n, 1, 0) : driver.add(addrs, lens, n, 1, 0);
                        if (h < 0) {
                            break;
                        }
                    }
                    driver.publish();
                    if (driver.pollUsed(ignore) == 0) {
                        Thread.onSpinWait();
                    }
                    if ((++checks & 63) == 0 && System.nanoTime() >= end) {
                        break;
                    }
                }
                long elapsed = System.nanoTime() - t0;
                stop.setOpaque(true);
                dev.join();
                if (failure.get() != null) {
                    throw new IllegalStateException("the ring failed: " + failure.get().getMessage(), failure.get());
                }
                return new Run((double) elapsed / Math.max(1, counts[0]), (double) counts[0] / Math.max(1, counts[1]));
            } finally {
                memory.release();
            }
        }
    }

    /** Pops, returns and publishes until {@code stop}; leaves the requests and the batches in {@code counts}. */
    private static void deviceLoop(RingQueue device, int written, AtomicBoolean stop, long[] counts) {
        long done = 0;
        long batches = 0;
        while (!stop.getOpaque()) {
            int k = 0;
            DescriptorChain c;
            while ((c = device.pop()) != null) {
                device.addUsed(c, written);
                k++;
            }
            if (k > 0) {
                device.publishUsed();
                done += k;
                batches++;
            } else {
                Thread.onSpinWait();
            }
        }
        counts[0] = done;
        counts[1] = batches;
    }
}
