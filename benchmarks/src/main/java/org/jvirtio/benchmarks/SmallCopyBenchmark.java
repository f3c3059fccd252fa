package org.jvirtio.benchmarks;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A small copy between two segments of shared-arena memory (as guest memory is mapped), at a
 * moving offset: what the net switch does per frame (a 64-byte frame into a receive buffer, a
 * frame's head into its snapshot). {@code segmentCopy}: {@link MemorySegment#copy}; {@code longs}:
 * 8-byte loads and stores, the tail byte by byte. Issue 26's profile put a 64-byte
 * {@code MemorySegment.copy} at about the cost of a whole frame's ring work.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class SmallCopyBenchmark {
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final int SLOTS = 64;
    private static final int STRIDE = 2048;

    @Param({"12", "64", "100", "1500"})
    int size;

    private Arena arena;
    private MemorySegment src;
    private MemorySegment dst;
    private int slot;

    @Setup
    public void setup() {
        arena = Arena.ofShared();
        src = arena.allocate((long) SLOTS * STRIDE, 4096);
        dst = arena.allocate((long) SLOTS * STRIDE, 4096);
        for (long i = 0; i < src.byteSize(); i++) {
            src.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31));
        }
    }

    @TearDown
    public void tearDown() {
        arena.close();
    }

    private long next() {
        slot = (slot + 1) & (SLOTS - 1);
        return (long) slot * STRIDE + 2; // unaligned, as a frame after its 12-byte header is
    }

    @Benchmark
    public MemorySegment segmentCopy() {
        long at = next();
        MemorySegment.copy(src, at, dst, at + 12, size);
        return dst;
    }

    @Benchmark
    public MemorySegment longs() {
        long at = next();
        copyLongs(src, at, dst, at + 12, size);
        return dst;
    }

    static void copyLongs(MemorySegment s, long from, MemorySegment d, long to, long n) {
        long i = 0;
        for (; n - i >= 8; i += 8) {
            d.set(LONG, to + i, s.get(LONG, from + i));
        }
        for (; i < n; i++) {
            d.set(ValueLayout.JAVA_BYTE, to + i, s.get(ValueLayout.JAVA_BYTE, from + i));
        }
    }
}
