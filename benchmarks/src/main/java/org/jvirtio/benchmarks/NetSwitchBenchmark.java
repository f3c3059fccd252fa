package org.jvirtio.benchmarks;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.QueueEngine;
import org.jvirtio.net.NetOptions;
import org.jvirtio.net.NetSwitch;
import org.jvirtio.net.SwitchPort;
import org.jvirtio.net.VirtioNetDevice;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.PackedRingLayout;
import org.jvirtio.ring.RingQueue;
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
 * The switch's own CPU cost per forwarded frame, single thread, no transport: two ports of one
 * {@link NetSwitch}, each a {@link VirtioNetDevice} with one queue pair (split or packed rings), their four
 * {@link QueueEngine}s run as {@code bin/vhost-user net + net} runs them on one I/O thread (a
 * receive queue woken by a frame, and a transmit queue by its chains coming back, through
 * {@code wakeHere}: here a task list of this thread). Per call each port's driver offers 32
 * frames (one descriptor: the 12-byte header and the frame, as DPDK's virtio-user and Linux send
 * them) and the other's 32 receive buffers of 2 KiB, each chain's descriptor written again before
 * it is offered (as Linux's and DPDK's split drivers do, and a packed driver must); the transmit queues are served (a kick) and
 * the tasks run until every frame was copied into the other port's buffers and every chain of
 * both rings went back. What an I/O thread spends per frame, minus its wake-ups, with every line
 * in this CPU's cache: the instructions, not the cache misses of a front-end on another CPU
 * ({@code bench/net-pmd.sh} measures those, with DPDK beside it).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class NetSwitchBenchmark {
    static final long A = 0x5254_0000_000aL;
    static final long B = 0x5254_0000_000bL;
    static final int SIZE = 256;
    static final int BATCH = 32;
    static final int HDR = 12;
    static final int RX_BUFFER = 2048;
    /**
     * Buffers lie this far apart, as DPDK's mbufs do (2 KiB of data room after 128 bytes of
     * headroom), and each pool a page past the one before: with 2 KiB buffers and pools a power of
     * two apart, packed rings measured 15-24% dearer than split at 1500 bytes and level with this
     * layout (split the same in both): most likely which lines shared cache sets, not the
     * ring.
     */
    static final int STRIDE = 2176;

    /** Bytes of each frame (after the virtio header). */
    @Param({"64", "1500"})
    public int frame;

    /** Packed rings (VIRTIO_F_RING_PACKED) instead of split ones. */
    @Param({"false", "true"})
    public boolean packed;

    private Arena arena;
    private GuestMemory memory;
    private final Port[] ports = new Port[2];
    /** Engines woken on this thread ({@code wakeHere}), in order; each at most once. */
    private final ArrayDeque<Woken> tasks = new ArrayDeque<>();

    /** One port: its device, its two engines, and its driver's two rings replayed. */
    static final class Port {
        SwitchPort port;
        VirtioNetDevice device;
        RecordingContext context;
        QueueEngine rx;
        QueueEngine tx;
        Replay rxDriver;
        Replay txDriver;
        long rxBuffers;
    }

    /** An engine's place in the task list. */
    static final class Woken {
        final QueueEngine engine;
        boolean pending;

        Woken(QueueEngine engine) {
            this.engine = engine;
        }
    }

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        arena = Arena.ofShared();
        MemorySegment seg = arena.allocate(16 << 20, 4096);
        memory = GuestMemory.of(GuestRegion.of(0, MemoryMapping.ofSegment(seg)));
        NetSwitch sw = new NetSwitch("bench" + System.nanoTime());
        long base = 0;
        for (int i = 0; i < 2; i++) {
            Port p = new Port();
            long mac = i == 0 ? A : B;
            p.port = sw.join(i == 0 ? "a" : "b");
            p.device = new VirtioNetDevice(p.port, NetOptions.defaults(mac));
            long features = packed ? FeatureNegotiation.offeredWithPacked(p.device)
                    : FeatureNegotiation.offered(p.device) & ~VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
            if (packed && (features & VirtioFeatures.bit(VirtioFeatures.RING_PACKED)) == 0) {
                throw new IllegalStateException("the net device does not offer packed rings");
            }
            p.context = new RecordingContext(features);
            p.device.activate(p.context);
            // rings: receiveq 0, transmitq 1
            long[] rxRing = place(base);
            long[] txRing = place(align(rxRing[3]));
            base = align(txRing[3]);
            p.rxBuffers = base;
            base = align(base + (long) SIZE * STRIDE) + 4096;
            long txFrames = base;
            base = align(base + (long) SIZE * STRIDE) + 4096;
            byte[] f = new byte[frame];
            put(f, 0, i == 0 ? B : A);
            put(f, 6, mac);
            f[12] = 0x08; // IPv4
            for (int k = 14; k < frame; k++) {
                f[k] = (byte) k;
            }
            long[] rxAddr = new long[SIZE];
            long[] txAddr = new long[SIZE];
            for (int c = 0; c < SIZE; c++) {
                rxAddr[c] = p.rxBuffers + (long) c * STRIDE;
                txAddr[c] = txFrames + (long) c * STRIDE;
                memory.slice(txAddr[c], HDR).fill((byte) 0);
                MemorySegment.copy(MemorySegment.ofArray(f), 0, memory.slice(txAddr[c] + HDR, frame), 0, frame);
            }
            p.rxDriver = replay(rxRing, features, rxAddr, RX_BUFFER, true);
            p.txDriver = replay(txRing, features, txAddr, HDR + frame, false);
            p.rx = engine(0, rxRing, features, p);
            p.tx = engine(1, txRing, features, p);
            ports[i] = p;
        }
    }

    /** A ring's areas at {@code base}: descriptors, driver area (avail), device area (used), end. */
    private long[] place(long base) {
        if (packed) {
            PackedRingLayout.Placement p = PackedRingLayout.place(base, SIZE);
            return new long[] {p.desc(), p.driver(), p.device(), p.end()};
        }
        SplitRingLayout.Placement p = SplitRingLayout.place(base, SIZE);
        return new long[] {p.desc(), p.avail(), p.used(), p.end()};
    }

    /** The driver's side of a ring of one-descriptor chains at {@code addr}, each {@code len} bytes. */
    private Replay replay(long[] at, long features, long[] addr, int len, boolean writable) {
        if (packed) {
            return new PackedReplay(memory.slice(at[0], PackedRingLayout.ringBytes(SIZE)), addr, len, writable);
        }
        SplitQueueDriver d = new SplitQueueDriver(memory, SIZE, at[0], at[1], at[2], features, 0, 0);
        int[] heads = new int[SIZE];
        for (int c = 0; c < SIZE; c++) {
            heads[c] = d.add(new long[] {addr[c]}, new int[] {len}, 1, writable ? 0 : 1, c);
        }
        // Each chain's descriptor written again before its head is offered, as Linux's and DPDK's
        // split drivers do (and as a packed driver must): both layouts' drivers do the same work.
        AvailReplay r = new AvailReplay(memory, at[1], SIZE, heads, at[0], at[0]);
        return r::offer;
    }

    private QueueEngine engine(int index, long[] at, long features, Port p) throws Exception {
        RingQueue ring = packed ? new PackedQueue(index) : new SplitQueue(index);
        ring.activate(memory, SIZE, at[0], at[1], at[2], features); // a fresh ring of either layout
        QueueBinding binding = new QueueBinding(index, ring, null, Interrupt.NONE);
        QueueEngine e = new QueueEngine(binding, p.device.openQueue(binding));
        Woken w = new Woken(e);
        e.wakeHere(() -> {
            if (!w.pending) {
                w.pending = true;
                tasks.addLast(w);
            }
            return true;
        });
        e.open();
        return e;
    }

    /** A driver making its next {@code n} chains available again (each descriptor written again first). */
    interface Replay {
        void offer(int n);
    }

    /**
     * A packed ring's driver for one-descriptor chains, buffer id = chain: each offer writes the
     * chain's descriptor at the ring position (address, then length, id and flags with AVAIL/USED
     * for the wrap counter, with release), as a packed driver must (the device wrote a used
     * descriptor there); the device returns the chains in order, so the position is free again.
     */
    static final class PackedReplay implements Replay {
        private static final java.lang.invoke.VarHandle U64 = java.lang.foreign.ValueLayout.JAVA_LONG.varHandle();
        private final MemorySegment ring;
        private final long[] addr;
        private final int len;
        private final int flags;
        private int pos;
        private boolean wrap = true;

        PackedReplay(MemorySegment ring, long[] addr, int len, boolean writable) {
            this.ring = ring;
            this.addr = addr;
            this.len = len;
            this.flags = writable ? PackedRingLayout.DESC_F_WRITE : 0;
        }

        @Override
        public void offer(int n) {
            for (int k = 0; k < n; k++) {
                int c = pos;
                long b = (long) c * PackedRingLayout.DESC_SIZE;
                ring.set(GuestMemory.LE_U64, b, addr[c]);
                int f = flags | (wrap ? PackedRingLayout.DESC_F_AVAIL : PackedRingLayout.DESC_F_USED);
                U64.setRelease(ring, b + 8, Integer.toUnsignedLong(len) | ((long) c << 32) | ((long) f << 48));
                if (++pos == SIZE) {
                    pos = 0;
                    wrap = !wrap;
                }
            }
        }
    }

    private static long align(long a) {
        return (a + 4095) & ~4095L;
    }

    private static void put(byte[] f, int at, long mac) {
        for (int k = 0; k < 6; k++) {
            f[at + k] = (byte) (mac >>> (8 * (5 - k)));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (Port p : ports) {
            if (!p.context.resets.isEmpty()) {
                throw new IllegalStateException("a ring broke during the benchmark: " + p.context.resets);
            }
            if (p.port.txDropped() + p.port.rxDropped() > 0) {
                throw new IllegalStateException("frames were dropped: " + p.port.stats());
            }
            p.rx.close();
            p.tx.close();
            p.device.reset();
        }
        memory.release();
        arena.close();
    }

    /** 32 frames each way: 64 frames forwarded, copied once each, every chain returned. */
    @Benchmark
    @OperationsPerInvocation(2 * BATCH)
    public int forward32() {
        for (Port p : ports) {
            p.rxDriver.offer(BATCH);
            p.rx.serve(); // the driver's kick for its new buffers (a resting queue returns at once)
            p.txDriver.offer(BATCH);
        }
        for (Port p : ports) {
            while (p.tx.serve()) {
                runTasks(); // the serve budget ran out (a cold JIT): the host's other work, then again
            }
            runTasks();
        }
        return tasks.size();
    }

    private void runTasks() {
        Woken w;
        while ((w = tasks.pollFirst()) != null) {
            w.pending = false;
            if (w.engine.reapCompletions()) {
                // work left (the serve budget ran out, a cold JIT): the host serves it again (its kick)
                while (w.engine.serve()) {
                    // again
                }
            }
        }
    }

    // for tests
    long received(int port) {
        return ports[port].port.rxFrames();
    }

    long dropped() {
        return ports[0].port.rxDropped() + ports[0].port.txDropped() + ports[1].port.rxDropped() + ports[1].port.txDropped();
    }

    /** The frame bytes in port {@code port}'s receive buffer {@code c} (after the header). */
    byte[] receivedFrame(int port, int c) {
        return memory.slice(ports[port].rxBuffers + (long) c * STRIDE + HDR, frame).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
    }

    int inFlight() {
        int n = 0;
        for (Port p : ports) {
            n += p.rx.inFlight() + p.tx.inFlight();
        }
        return n;
    }
}
