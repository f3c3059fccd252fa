package org.jvirtio.benchmarks;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.PackedRingLayout;
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

import static org.jvirtio.api.GuestMemory.LE_U64;
import static org.jvirtio.ring.PackedRingLayout.*;

/**
 * The packed ring's device-side cost of one request, beside {@link SplitQueueBenchmark}: pop (the
 * head's flags with acquire, the chain in ring order, full validation and translation) + add-used
 * (the used descriptor as one release store) + publish (the interrupt decision), single thread,
 * the same chain shapes. The driver's part is what a packed driver cannot avoid: each descriptor
 * of each chain written again at its ring position (address, then length, id and flags as one
 * word, the chain's first descriptor last), since the ring itself is where the device writes
 * back; so these figures carry a little more driver work than the split ones.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class PackedQueueBenchmark {
    private static final int SIZE = 256;
    private static final int BATCH = 32;
    private static final VarHandle U64 = ValueLayout.JAVA_LONG.varHandle();

    /** 1, 3 or 8 direct descriptors, or a 3-entry indirect table. */
    @Param({"direct1", "direct3", "direct8", "indirect3"})
    public String layout;

    /** With the vhost-user inflight region attached (QueueRegionPacked: every descriptor copied as taken), or without. */
    @Param({"false", "true"})
    public boolean inflight;

    private Arena arena;
    private GuestMemory memory;
    private MemorySegment ring;
    /** A ring of the same size nobody reads: where {@link #driverOnly32} writes. */
    private MemorySegment shadow;
    private int shadowPos;
    private boolean shadowWrap = true;
    private int shadowNext;
    private PackedQueue queue;
    /** Per chain template: its descriptors' addresses, lengths and flags (without AVAIL/USED). */
    private long[][] addrs;
    private int[][] lens;
    private int[][] flags;
    private int chains;
    private int next;
    private int pos;
    private boolean wrap = true;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(4 << 20, 4096);
        memory = GuestMemory.of(GuestRegion.of(0, MemoryMapping.ofSegment(seg)));
        long features = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.EVENT_IDX, VirtioFeatures.INDIRECT_DESC,
                VirtioFeatures.RING_PACKED);
        PackedRingLayout.Placement p = PackedRingLayout.place(0, SIZE);
        ring = memory.slice(p.desc(), ringBytes(SIZE));
        shadow = memory.slice(0x200000, ringBytes(SIZE));
        int n = switch (layout) {
            case "direct1" -> 1;
            case "direct3", "indirect3" -> 3;
            case "direct8" -> 8;
            default -> throw new IllegalArgumentException(layout);
        };
        boolean indirect = layout.startsWith("indirect");
        int perChain = indirect ? 1 : n;
        chains = SIZE / perChain;
        addrs = new long[chains][perChain];
        lens = new int[chains][perChain];
        flags = new int[chains][perChain];
        for (int c = 0; c < chains; c++) {
            long base = 0x100000 + (long) c * 0x2000;
            // virtio-blk shape: 16-byte header, data, 1-byte status
            long[] a = new long[n];
            int[] l = new int[n];
            for (int i = 0; i < n; i++) {
                a[i] = base + i * 512L;
                l[i] = n == 1 ? 512 : (i == 0 ? 16 : (i == n - 1 ? 1 : 512));
            }
            if (indirect) {
                long table = 0x10000 + (long) c * 8 * DESC_SIZE;
                for (int i = 0; i < n; i++) {
                    memory.writeU64(table + 16L * i, a[i]);
                    memory.writeU32(table + 16L * i + 8, l[i]);
                    memory.writeU16(table + 16L * i + DESC_FLAGS, i >= 1 ? DESC_F_WRITE : 0);
                }
                addrs[c][0] = table;
                lens[c][0] = n * DESC_SIZE;
                flags[c][0] = DESC_F_INDIRECT;
            } else {
                for (int i = 0; i < n; i++) {
                    addrs[c][i] = a[i];
                    lens[c][i] = l[i];
                    flags[c][i] = (i >= 1 ? DESC_F_WRITE : 0) | (i + 1 < n ? DESC_F_NEXT : 0);
                }
            }
        }
        queue = new PackedQueue(0);
        queue.activate(memory, SIZE, p.desc(), p.driver(), p.device(), features);
        if (inflight) {
            queue.attachInflight(arena.allocate(org.jvirtio.ring.RingQueue.inflightRegionSize(true, SIZE), 64), SIZE);
        }
        queue.disableNotifications();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        memory.release();
        arena.close();
    }

    /** Makes the next {@code count} chains available, as a driver does. */
    private void offer(int count) {
        for (int k = 0; k < count; k++) {
            int c = next;
            next = next + 1 == chains ? 0 : next + 1;
            int first = pos;
            boolean firstWrap = wrap;
            writeChain(ring, c);
            U64.setRelease(ring, (long) first * DESC_SIZE + DESC_LEN, word(lens[c][0], c, flags[c][0] | availFlags(firstWrap)));
        }
    }

    /** Writes chain {@code c}'s descriptors but the first one's word at the ring position, advancing it. */
    private void writeChain(MemorySegment target, int c) {
        long[] a = addrs[c];
        int[] l = lens[c];
        int[] f = flags[c];
        for (int i = 0; i < a.length; i++) {
            long b = (long) pos * DESC_SIZE;
            target.set(LE_U64, b, a[i]);
            if (i > 0) {
                target.set(LE_U64, b + DESC_LEN, word(l[i], c, f[i] | availFlags(wrap)));
            }
            if (++pos == SIZE) {
                pos = 0;
                wrap = !wrap;
            }
        }
    }

    private static long word(int len, int id, int flags) {
        return Integer.toUnsignedLong(len) | ((long) id << 32) | ((long) flags << 48);
    }

    /**
     * The driver's part of {@link #batch32} alone (the same stores into a ring nobody reads): what
     * to take off {@code batch32} for the device's cost per request.
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int driverOnly32() {
        int savedPos = pos;
        boolean savedWrap = wrap;
        pos = shadowPos;
        wrap = shadowWrap;
        for (int k = 0; k < BATCH; k++) {
            int c = shadowNext;
            shadowNext = shadowNext + 1 == chains ? 0 : shadowNext + 1;
            int first = pos;
            boolean firstWrap = wrap;
            writeChain(shadow, c);
            U64.setRelease(shadow, (long) first * DESC_SIZE + DESC_LEN, word(lens[c][0], c, flags[c][0] | availFlags(firstWrap)));
        }
        shadowPos = pos;
        shadowWrap = wrap;
        pos = savedPos;
        wrap = savedWrap;
        return shadowPos;
    }

    @Benchmark
    public boolean single() {
        offer(1);
        DescriptorChain c = queue.pop();
        queue.addUsed(c, 0);
        return queue.publishUsed();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public boolean batch32() {
        offer(BATCH);
        DescriptorChain c;
        while ((c = queue.pop()) != null) {
            queue.addUsed(c, 0);
        }
        return queue.publishUsed();
    }
}
