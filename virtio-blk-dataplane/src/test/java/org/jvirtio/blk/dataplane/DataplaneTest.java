package org.jvirtio.blk.dataplane;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.time.Duration;

import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.blk.BlkIoFactory;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.RamBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import org.jvirtio.testkit.RecordingContext;
import org.jvirtio.testkit.Await;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.jvirtio.api.linux.Libc;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.jvirtio.blk.VirtioBlk.*;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The data plane end to end below the transport: a split ring in memfd memory, real kick and call
 * eventfds, the I/O threads (Netty epoll) and io_uring on a real file.
 */
class DataplaneTest {
    static final long DISK = 8 << 20;

    @TempDir
    Path dir;
    GuestMemory mem;
    IoThreads threads;
    VirtioBlkDevice device;
    DeviceQueues queues;
    final List<BlkRig> rigs = new ArrayList<>();
    BlockBackend backend;

    @BeforeEach
    void setUp() throws Exception {
        mem = BlkRig.memory();
    }

    @AfterEach
    void tearDown() throws Exception {
        if (device != null) {
            queues.stopAll();
            device.reset();
        }
        for (BlkRig r : rigs) {
            r.close();
        }
        if (threads != null) {
            threads.close();
        }
        if (backend != null) {
            backend.close();
        }
        mem.release();
    }

    Path image(long size) throws Exception {
        Path p = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p;
    }

    void start(BlockBackend b, BlkIoFactory io, int queues, int iothreads, long pollUs) throws Exception {
        threads = new IoThreads(iothreads, pollUs);
        start(b, io, queues, threads);
    }

    void start(BlockBackend b, BlkIoFactory io, int queues, QueueHost host) throws Exception {
        backend = b;
        device = new VirtioBlkDevice(b, new BlkOptions(queues, BlkRig.SIZE, "dp", false), io);
        this.queues = new DeviceQueues(device, host);
        device.activate(new RecordingContext(FeatureNegotiation.offered(device)));
        for (int q = 0; q < queues; q++) {
            rigs.add(new BlkRig(mem, q, BlkRig.RINGS + 0x10000L * q, this.queues));
        }
    }

    /** Random writes and reads with odd buffer splits, checked against a shadow copy of the disk. */
    static void randomIo(BlkRig rig, byte[] shadow, long seed, int rounds) throws Exception {
        Random rnd = new Random(seed);
        for (int round = 0; round < rounds; round++) {
            int depth = 1 + rnd.nextInt(16); // up to 8 descriptors each in a 128-entry ring
            List<long[]> reads = new ArrayList<>();
            // Writes of one round go to disjoint ranges (the device may run them in any order).
            boolean[] used = new boolean[shadow.length / 4096];
            for (int i = 0; i < depth; i++) {
                int blocks = 1 + rnd.nextInt(8);
                int start = rnd.nextInt(used.length - blocks);
                boolean clash = false;
                for (int b = start; b < start + blocks; b++) {
                    clash |= used[b];
                }
                if (clash) {
                    continue;
                }
                Arrays.fill(used, start, start + blocks, true);
                int len = blocks * 4096;
                long sector = start * 8L;
                if (rnd.nextBoolean()) {
                    byte[] d = new byte[len];
                    rnd.nextBytes(d);
                    System.arraycopy(d, 0, shadow, start * 4096, len);
                    long t = rig.add(T_OUT, sector, d, 0, 1 + rnd.nextInt(6), rnd);
                    reads.add(new long[] {t, -1, 0});
                } else {
                    long t = rig.add(T_IN, sector, null, len, 1 + rnd.nextInt(6), rnd);
                    reads.add(new long[] {t, start * 4096L, len});
                }
            }
            byte[] expect = shadow.clone();
            rig.publishAndKick();
            rig.awaitAll();
            for (long[] r : reads) {
                assertEquals(S_OK, rig.statusOf(r[0]));
                byte[] got = rig.take(r[0], (int) r[2]);
                if (r[1] >= 0) {
                    assertArrayEquals(Arrays.copyOfRange(expect, (int) r[1], (int) (r[1] + r[2])), got, "read at " + r[1]);
                    assertEquals((int) r[2] + 1, (int) rig.usedLength.get(r[0]));
                }
            }
        }
    }

    @ParameterizedTest(name = "io_uring={0}, poll-us={1}, inline buffered writes={2}")
    @CsvSource({"true, 0, true", "true, 50, true", "true, 0, false", "false, 0, true"})
    void randomIoOnAFile(boolean uring, long pollUs, boolean inlineWrites) throws Exception {
        if (uring) {
            assumeTrue(UringIoFactory.available(), "io_uring is not available here");
        }
        Path img = image(DISK);
        UringIoFactory io = new UringIoFactory(uring, inlineWrites);
        start(FileBackend.open(img, false, false), io, 1, 1, pollUs);
        byte[] shadow = new byte[(int) DISK];
        randomIo(rigs.get(0), shadow, 42, 40);
        if (!uring) {
            assertNotNull(io.fallbackReason());
        } else {
            assertNull(io.fallbackReason());
        }
        // Flush, then what the file holds is what the driver wrote.
        long t = rigs.get(0).add(T_FLUSH, 0, new byte[0], 0, 0, new Random());
        rigs.get(0).publishAndKick();
        rigs.get(0).awaitAll();
        assertEquals(S_OK, rigs.get(0).statusOf(t));
        assertArrayEquals(shadow, Files.readAllBytes(img));
        assertEquals(0, device.stats(0).inFlight());
        assertTrue(device.stats(0).requests() > 100);
        assertEquals(0, device.stats(0).errors());
    }

    /**
     * What the kernel may answer and rarely does here: -EAGAIN, -EINTR, and transfers shorter
     * than asked (at any byte count), injected into a third of the completions of reads, writes
     * (through io_uring: inline reads and writes off), flushes and discards. Every request must still
     * complete once, with the right data and status.
     */
    @Test
    void eagainEintrAndShortTransfersAreRetriedToCompletion() throws Exception {
        assumeTrue(UringIoFactory.available(), "io_uring is not available here");
        Path img = image(DISK);
        UringIoFactory uring = new UringIoFactory(true, false, false);
        java.util.concurrent.atomic.AtomicInteger injected = new java.util.concurrent.atomic.AtomicInteger();
        BlkIoFactory io = (b, depth) -> {
            org.jvirtio.blk.BlockQueueIo q = uring.open(b, depth);
            Random rnd = new Random(7);
            ((UringQueueIo) q).filterResults(res -> {
                int pick = rnd.nextInt(9);
                if (pick == 0 || pick == 1) {
                    injected.incrementAndGet();
                    return pick == 0 ? -11 : -4; // -EAGAIN, -EINTR
                }
                if (pick == 2 && res > 1) {
                    injected.incrementAndGet();
                    return 1 + rnd.nextInt(res - 1); // short
                }
                return res;
            });
            return q;
        };
        start(FileBackend.open(img, false, false), io, 1, 1, 0);
        BlkRig rig = rigs.get(0);
        byte[] shadow = new byte[(int) DISK];
        randomIo(rig, shadow, 43, 40);
        Random rnd = new Random(3);
        long f = rig.add(T_FLUSH, 0, new byte[0], 0, 0, rnd);
        long d = rig.add(T_DISCARD, 0, dwz(new long[] {0, 128, 0}), 0, 1, rnd);
        rig.publishAndKick();
        rig.awaitAll();
        assertEquals(S_OK, rig.statusOf(f));
        assertEquals(S_OK, rig.statusOf(d));
        Arrays.fill(shadow, 0, 128 * 512, (byte) 0);
        assertArrayEquals(shadow, Files.readAllBytes(img));
        assertEquals(0, device.stats(0).errors());
        assertTrue(injected.get() > 50, "faults injected: " + injected.get());
    }

    /** An image in a fresh directory under /dev/shm (tmpfs), removed with the test's directory. */
    Path tmpfsImage(long size) throws Exception {
        Path shm = Path.of("/dev/shm");
        assumeTrue(Files.isDirectory(shm) && Files.getFileStore(shm).type().equals("tmpfs"), "no tmpfs at /dev/shm");
        Path d = Files.createTempDirectory(shm, "jvirtio-test");
        Path p = d.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        tmpfsDirs.add(d);
        return p;
    }

    final List<Path> tmpfsDirs = new ArrayList<>();

    @AfterEach
    void removeTmpfsImages() throws Exception {
        for (Path d : tmpfsDirs) {
            try (var files = Files.list(d)) {
                for (Path f : files.toList()) {
                    Files.deleteIfExists(f);
                }
            }
            Files.deleteIfExists(d);
        }
    }

    /** The queues' I/O channels (io_uring or the pool), captured as the device opens them. */
    final List<org.jvirtio.blk.BlockQueueIo> opened = new ArrayList<>();

    BlkIoFactory capturing(UringIoFactory uring) {
        return (b, depth) -> {
            org.jvirtio.blk.BlockQueueIo q = uring.open(b, depth);
            opened.add(q);
            return q;
        };
    }

    /** Reads queue 0's channel answered on its I/O thread, asked there. */
    long readsInline() throws Exception {
        return threads.loopOf(0).submit(() -> opened.get(0) instanceof UringQueueIo u ? u.readsInline()
                : ((PooledQueueIo) opened.get(0)).readsInline()).get();
    }

    /**
     * FileBackend knows which images live in memory (the file system's magic number, checked
     * here against the mount table's type): tmpfs is, the test's own directory is unless it is
     * on tmpfs too; and how a read of each can be done without waiting (plain on tmpfs, with
     * RWF_NOWAIT where the probe says so, never with O_DIRECT).
     */
    @Test
    void memoryBackedImagesAreRecognised() throws Exception {
        Path shm = tmpfsImage(DISK);
        Path local = image(DISK);
        try (FileBackend a = FileBackend.open(shm, false, false); FileBackend b = FileBackend.open(local, true, false)) {
            assertTrue(a.memoryBacked(), shm.toString());
            String type = Files.getFileStore(local).type();
            assertEquals(type.equals("tmpfs") || type.equals("ramfs") || type.equals("hugetlbfs"), b.memoryBacked(), local + " on " + type);
            assertEquals(0, a.inlineReadFlags());
            assertEquals(b.memoryBacked() ? 0 : org.jvirtio.blk.FileCalls.readsWithoutWaiting(b.fd()) ? Libc.RWF_NOWAIT : -1,
                    b.inlineReadFlags());
        }
        try (FileBackend d = FileBackend.open(local, true, true)) {
            assertEquals(-1, d.inlineReadFlags(), "O_DIRECT reads go through io_uring");
        } catch (java.io.IOException e) {
            assumeTrue(false, "O_DIRECT refused on " + local + ": " + e.getMessage());
        }
    }

    /**
     * Reads of an image on tmpfs are copied on the I/O thread (io_uring would hand each to an
     * io-wq worker); random I/O with odd buffer splits reads back what was written, with the
     * inline path on and off, and the file holds the driver's data after a flush.
     */
    @ParameterizedTest(name = "inline reads={0}")
    @CsvSource({"true", "false"})
    void randomIoOnATmpfsImage(boolean inlineReads) throws Exception {
        assumeTrue(UringIoFactory.available(), "io_uring is not available here");
        Path img = tmpfsImage(DISK);
        start(FileBackend.open(img, false, false), capturing(new UringIoFactory(true, true, inlineReads)), 1, 1, 0);
        byte[] shadow = new byte[(int) DISK];
        randomIo(rigs.get(0), shadow, 44, 40);
        long t = rigs.get(0).add(T_FLUSH, 0, new byte[0], 0, 0, new Random());
        rigs.get(0).publishAndKick();
        rigs.get(0).awaitAll();
        assertEquals(S_OK, rigs.get(0).statusOf(t));
        assertArrayEquals(shadow, Files.readAllBytes(img));
        assertEquals(0, device.stats(0).errors());
        long inline = readsInline();
        if (inlineReads) {
            assertTrue(inline > 50, "reads answered inline: " + inline);
        } else {
            assertEquals(0, inline);
        }
    }

    /**
     * Reads of an image on a disk file system (ext4 here) are tried with RWF_NOWAIT on the I/O
     * thread first, with io_uring and on the thread-pool fallback: page-cache hits are answered
     * there, and every read, hit, miss or partial, returns what was written (random I/O with odd
     * buffer splits, a shadow copy); with inline reads off, none is answered inline.
     */
    @ParameterizedTest(name = "io_uring={0}, inline reads={1}")
    @CsvSource({"true, true", "true, false", "false, true", "false, false"})
    void randomIoOnADiskImageReadsPageCacheHitsInline(boolean uring, boolean inlineReads) throws Throwable {
        assumeTrue(!uring || UringIoFactory.available(), "io_uring is not available here");
        Path img = image(DISK);
        FileBackend backend = FileBackend.open(img, false, false);
        if (backend.inlineReadFlags() != Libc.RWF_NOWAIT) {
            backend.close();
            assumeTrue(false, img + "'s file system refuses RWF_NOWAIT");
        }
        start(backend, capturing(new UringIoFactory(uring, true, inlineReads)), 1, 1, 0);
        BlkRig rig = rigs.get(0);
        byte[] shadow = new byte[(int) DISK];
        randomIo(rig, shadow, 45, 40);
        long inline = readsInline();
        if (inlineReads) {
            assertTrue(inline > 50, "reads answered inline: " + inline);
        } else {
            assertEquals(0, inline);
        }
        // Out of the page cache (written back, then dropped): a read misses, goes through
        // io_uring (or the pool), and still returns what was written. The kernel may keep a page
        // the drop could not take (one still on another CPU's LRU batch, or under writeback): then
        // that read is a hit, and the drop is tried again (a few times; one miss is what is asked).
        Random rnd = new Random(46);
        boolean missed = false;
        for (int attempt = 0; attempt < 5 && !missed; attempt++) {
            long flush = rig.add(T_FLUSH, 0, new byte[0], 0, 0, new Random());
            rig.publishAndKick();
            rig.awaitAll();
            assertEquals(S_OK, rig.statusOf(flush));
            assertEquals(0, dropFromPageCache(backend.fd()));
            long before = readsInline();
            long t = rig.add(T_IN, 64, null, 12 * 4096, 3, rnd);
            rig.publishAndKick();
            rig.awaitAll();
            assertEquals(S_OK, rig.statusOf(t));
            assertArrayEquals(Arrays.copyOfRange(shadow, 64 * 512, 64 * 512 + 12 * 4096), rig.take(t, 12 * 4096));
            missed = readsInline() == before;
        }
        assertTrue(missed, "no read missed the cache after it was dropped (was the read tried without RWF_NOWAIT?)");
        randomIo(rig, shadow, 47, 10);
        assertArrayEquals(shadow, Files.readAllBytes(img));
        assertEquals(0, device.stats(0).errors());
    }

    /** posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED): clean pages of the file leave the page cache. */
    static int dropFromPageCache(int fd) throws Throwable {
        java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
        java.lang.invoke.MethodHandle h = linker.downcallHandle(linker.defaultLookup().find("posix_fadvise").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT, java.lang.foreign.ValueLayout.JAVA_INT,
                        java.lang.foreign.ValueLayout.JAVA_LONG, java.lang.foreign.ValueLayout.JAVA_LONG, java.lang.foreign.ValueLayout.JAVA_INT));
        return (int) h.invokeExact(fd, 0L, 0L, 4); // POSIX_FADV_DONTNEED
    }

    /** virtio-blk's own default host (a thread per queue in poll(2)) runs the same engine, io_uring included. */
    @ParameterizedTest(name = "io_uring={0}")
    @CsvSource({"true", "false"})
    void threadPerQueueHostServesTheSameEngine(boolean uring) throws Exception {
        if (uring) {
            assumeTrue(UringIoFactory.available());
        }
        Path img = image(DISK);
        start(FileBackend.open(img, false, false), new UringIoFactory(uring), 2, QueueHost.THREAD_PER_QUEUE);
        byte[] shadow = new byte[(int) DISK];
        randomIo(rigs.get(0), shadow, 5, 10);
        randomIo(rigs.get(1), shadow, 6, 10);
        queues.stop(0);
        queues.stop(1);
        assertArrayEquals(shadow, Files.readAllBytes(img));
    }

    /**
     * Buffered reads of pages not in the page cache complete through io_uring task work on the
     * I/O thread, not from an io-wq worker: the completion eventfd must fire for those too (with
     * IORING_REGISTER_EVENTFD_ASYNC it did not, and a QD1 reader waited forever).
     */
    @Test
    void coldPageCacheReadsComplete() throws Exception {
        assumeTrue(UringIoFactory.available());
        Path img = image(DISK);
        byte[] content = new byte[(int) DISK];
        new Random(21).nextBytes(content);
        // Written with O_DIRECT: the data is on disk, not in the page cache.
        try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.WRITE,
                com.sun.nio.file.ExtendedOpenOption.DIRECT)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocateDirect((int) DISK + 4096).alignedSlice(4096);
            b.put(content).flip();
            while (b.hasRemaining()) {
                ch.write(b, b.position());
            }
        }
        start(FileBackend.open(img, false, false), new UringIoFactory(), 1, 1, 0);
        BlkRig rig = rigs.get(0);
        Random rnd = new Random(4);
        for (int i = 0; i < 200; i++) {
            int block = i * 9 % (int) (DISK / 4096);
            long t = rig.add(T_IN, block * 8L, null, 4096, 1 + rnd.nextInt(3), rnd);
            rig.publishAndKick();
            rig.awaitAll();
            assertEquals(S_OK, rig.statusOf(t));
            assertArrayEquals(Arrays.copyOfRange(content, block * 4096, block * 4096 + 4096), rig.take(t, 4096), "block " + block);
        }
    }

    /**
     * O_DIRECT refuses guest buffers split at odd byte boundaries (EINVAL); such requests are
     * bounced through an aligned buffer instead of failing, on io_uring and on the fallback.
     */
    @ParameterizedTest(name = "io_uring={0}")
    @CsvSource({"true", "false"})
    void directIoWithUnalignedGuestBuffersIsBounced(boolean uring) throws Exception {
        if (uring) {
            assumeTrue(UringIoFactory.available());
        }
        Path img = image(DISK);
        FileBackend direct;
        try {
            direct = FileBackend.open(img, false, true);
        } catch (java.io.IOException e) {
            org.junit.jupiter.api.Assumptions.abort("O_DIRECT not supported here: " + e.getMessage());
            return;
        }
        start(direct, new UringIoFactory(uring), 1, 1, 0);
        byte[] shadow = new byte[(int) DISK];
        randomIo(rigs.get(0), shadow, 77, 20);
        assertEquals(0, device.stats(0).errors());
        assertArrayEquals(shadow, Files.readAllBytes(img));
    }

    /**
     * A RAM disk that says what it served in which order: it counts writes (the busy queue's
     * requests) and, for each read (the quiet queue's), records how many writes had been served
     * when the read was. The I/O thread calls it; the test reads it.
     */
    static final class ServiceOrder implements BlockBackend {
        final RamBackend ram = new RamBackend(DISK);
        final java.util.concurrent.atomic.AtomicLong writes = new java.util.concurrent.atomic.AtomicLong();
        final java.util.Map<Long, Long> writesWhenRead = new java.util.concurrent.ConcurrentHashMap<>();

        @Override
        public long size() {
            return ram.size();
        }

        @Override
        public void read(long offset, java.lang.foreign.MemorySegment m, long memOffset, long length) {
            writesWhenRead.put(offset, writes.get());
            ram.read(offset, m, memOffset, length);
        }

        @Override
        public void write(long offset, java.lang.foreign.MemorySegment m, long memOffset, long length) {
            ram.write(offset, m, memOffset, length);
            writes.incrementAndGet();
        }

        @Override
        public void discard(long offset, long length) {
            ram.discard(offset, length);
        }

        @Override
        public void writeZeroes(long offset, long length, boolean unmap) {
            ram.writeZeroes(offset, length, unmap);
        }

        @Override
        public String describe() {
            return "service order over " + ram.describe();
        }

        @Override
        public void close() {
            ram.close();
        }
    }

    /**
     * Two queues share one I/O thread with a long polling window; a driver keeps queue 0 busy
     * with batches of 32 writes (the next batch as soon as the last one came back, polling, as a
     * busy guest does), and queue 1 sends groups of 5 reads now and then. What fairness means,
     * counted on the device side: each group of reads is served as a whole between the busy
     * queue's batches (all five with the same count of writes before them), while the reads wait
     * the busy queue serves at most a few batches (the one being drained, and another should the
     * busy driver refill before the thread looks up), and the busy queue goes on being served
     * between the groups. Stopping queue 0 under load returns within its limit. (The serve
     * budget itself is pinned down deterministically in VirtioBlkRequestTest.)
     */
    @Test
    void aBusyQueueDoesNotStarveItsNeighbourOrItsStop() throws Exception {
        ServiceOrder disk = new ServiceOrder();
        // A 5 ms polling window: the busy driver always resubmits within it.
        start(disk, BlkIoFactory.INLINE, 2, 1, 5000);
        BlkRig busy = rigs.get(0);
        BlkRig other = rigs.get(1);
        java.util.concurrent.atomic.AtomicBoolean run = new java.util.concurrent.atomic.AtomicBoolean(true);
        java.util.concurrent.atomic.AtomicLong served = new java.util.concurrent.atomic.AtomicLong();
        Throwable[] died = new Throwable[1];
        Thread load = Thread.ofPlatform().start(() -> {
          try {
            Random rnd = new Random(8);
            byte[] d = new byte[4096];
            while (run.get()) {
                long[] ts = new long[32];
                for (int i = 0; i < 32; i++) {
                    ts[i] = busy.add(T_OUT, 8L * i, d, 0, 1, rnd);
                }
                busy.driver.publish();
                busy.kick.signal();
                // poll for completions like a busy guest (no sleeping: the device polls too)
                while (busy.driver.inFlight() > 0 && run.get()) {
                    busy.collect();
                }
                for (long t : ts) {
                    if (busy.status.containsKey(t)) {
                        busy.take(t, 0);
                        served.incrementAndGet();
                    }
                }
                busy.status.clear();
            }
          } catch (Throwable e) {
            died[0] = e;
          }
        });
        try {
            Await.await(() -> disk.writes.get() > 1000, Await.seconds(10), "the busy queue under way");
            Random rnd = new Random(9);
            int groups = 20;
            int perGroup = 5;
            long quiet = DISK / 2; // the reads' bytes: far from the writes' first 128 KiB
            long[] writesBefore = new long[groups];
            long[] writesAfter = new long[groups];
            for (int g = 0; g < groups; g++) {
                if (g > 0) {
                    // The busy queue is served between the groups too (a batch at least).
                    long after = writesAfter[g - 1];
                    Await.await(() -> disk.writes.get() >= after + 32, Await.seconds(10),
                            "the busy queue served a batch after group " + (g - 1));
                }
                long[] ts = new long[perGroup];
                for (int i = 0; i < perGroup; i++) {
                    ts[i] = other.add(T_IN, (quiet + 4096L * (g * perGroup + i)) / 512, null, 4096, 1, rnd);
                }
                other.publishAndKick();
                writesBefore[g] = disk.writes.get(); // after the kick: preemption here can only lower the count
                other.awaitAll();
                for (long t : ts) {
                    assertEquals(S_OK, other.statusOf(t));
                    other.take(t, 4096);
                }
                writesAfter[g] = disk.writes.get();
            }
            assertNull(died[0], () -> "the load died: " + died[0]);
            for (int g = 0; g < groups; g++) {
                long first = quiet + 4096L * g * perGroup;
                Long servedAt = disk.writesWhenRead.get(first);
                assertNotNull(servedAt, "group " + g + " was read");
                for (int i = 1; i < perGroup; i++) {
                    assertEquals(servedAt, disk.writesWhenRead.get(first + 4096L * i),
                            "group " + g + " is served as a whole, no write between its reads");
                }
                long waitedFor = servedAt - writesBefore[g];
                assertTrue(waitedFor <= 4 * 32, "group " + g + " waited while the busy queue served " + waitedFor
                        + " writes (more than 4 of its batches of 32)");
            }
            assertTrue(served.get() > 0, "served under load: " + served.get());
            long t0 = System.nanoTime();
            queues.stop(0); // while the driver is still submitting
            assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "the stop returned within its limit");
        } finally {
            run.set(false);
            load.join();
        }
    }

    /** Writethrough (the driver cleared writeback via CONFIG_WCE): writes go out with RWF_DSYNC. */
    @Test
    void writethroughWritesGoOutWithDsync() throws Exception {
        assumeTrue(UringIoFactory.available());
        Path img = image(DISK);
        start(FileBackend.open(img, false, false), new UringIoFactory(), 1, 1, 0);
        device.writeConfig(org.jvirtio.blk.VirtioBlk.CFG_WRITEBACK, new byte[] {0});
        assertEquals(0, device.readConfig(org.jvirtio.blk.VirtioBlk.CFG_WRITEBACK, 1)[0]);
        byte[] shadow = new byte[(int) DISK];
        randomIo(rigs.get(0), shadow, 31, 8);
        assertEquals(0, device.stats(0).errors());
        assertArrayEquals(shadow, Files.readAllBytes(img));
    }

    /** A queue without a kick eventfd (vhost-user NOFD) is polled by its I/O thread, and stops cleanly. */
    @ParameterizedTest(name = "io threads={0}")
    @CsvSource({"true", "false"})
    void queueWithoutKickFdIsPolled(boolean ioThreads) throws Exception {
        Path img = image(DISK);
        backend = FileBackend.open(img, false, false);
        QueueHost host = QueueHost.THREAD_PER_QUEUE;
        if (ioThreads) {
            threads = new IoThreads(1, 0);
            host = threads;
        }
        device = new VirtioBlkDevice(backend, new BlkOptions(1, BlkRig.SIZE, "dp", false), new UringIoFactory());
        queues = new DeviceQueues(device, host);
        device.activate(new RecordingContext(FeatureNegotiation.offered(device)));
        BlkRig rig = new BlkRig(mem, 0, BlkRig.RINGS, queues, false);
        rigs.add(rig);
        byte[] shadow = new byte[(int) DISK];
        randomIo(rig, shadow, 13, 5);
        queues.stop(0);
        assertArrayEquals(shadow, Files.readAllBytes(img));
    }

    @Test
    void twoQueuesOnTwoIoThreadsAtOnce() throws Exception {
        assumeTrue(UringIoFactory.available());
        Path img = image(DISK);
        start(FileBackend.open(img, false, false), new UringIoFactory(), 2, 2, 0);
        assertNotSame(threads.loopOf(0), threads.loopOf(1));
        byte[] shadow = new byte[(int) DISK];
        // Each queue works on its own half of the disk, concurrently.
        Thread other = Thread.ofPlatform().start(() -> {
            try {
                byte[] half = new byte[(int) DISK / 2];
                randomIoAt(rigs.get(1), half, DISK / 2, 7);
                System.arraycopy(half, 0, shadow, (int) DISK / 2, half.length);
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        byte[] half = new byte[(int) DISK / 2];
        randomIoAt(rigs.get(0), half, 0, 8);
        other.join();
        System.arraycopy(half, 0, shadow, 0, half.length);
        assertArrayEquals(shadow, Files.readAllBytes(img));
        assertTrue(device.stats(0).requests() > 0 && device.stats(1).requests() > 0);
    }

    /** Writes then reads back every 64 KiB block of a range through one queue. */
    static void randomIoAt(BlkRig rig, byte[] range, long base, long seed) throws Exception {
        Random rnd = new Random(seed);
        int blocks = range.length / BlkRig.MAX_DATA;
        for (int pass = 0; pass < 2; pass++) {
            List<Long> tokens = new ArrayList<>();
            for (int b = 0; b < blocks; b++) {
                byte[] d = new byte[BlkRig.MAX_DATA];
                rnd.nextBytes(d);
                System.arraycopy(d, 0, range, b * BlkRig.MAX_DATA, d.length);
                tokens.add(rig.add(T_OUT, (base + (long) b * BlkRig.MAX_DATA) / 512, d, 0, 1 + rnd.nextInt(16), rnd));
                if (!rig.room(16) || b == blocks - 1) {
                    rig.publishAndKick();
                    rig.awaitAll();
                    for (long t : tokens) {
                        assertEquals(S_OK, rig.statusOf(t));
                        rig.take(t, 0);
                    }
                    tokens.clear();
                }
            }
        }
        List<long[]> reads = new ArrayList<>();
        for (int b = 0; b < blocks; b++) {
            reads.add(new long[] {rig.add(T_IN, (base + (long) b * BlkRig.MAX_DATA) / 512, null, BlkRig.MAX_DATA, 3, rnd), b});
            if (!rig.room(16) || b == blocks - 1) {
                rig.publishAndKick();
                rig.awaitAll();
                for (long[] r : reads) {
                    assertEquals(S_OK, rig.statusOf(r[0]));
                    assertArrayEquals(Arrays.copyOfRange(range, (int) r[1] * BlkRig.MAX_DATA, (int) (r[1] + 1) * BlkRig.MAX_DATA),
                            rig.take(r[0], BlkRig.MAX_DATA));
                }
                reads.clear();
            }
        }
    }

    @Test
    void stopWaitsForRequestsInFlightAndReturnsThemAll() throws Exception {
        assumeTrue(UringIoFactory.available());
        Path img = image(DISK);
        start(FileBackend.open(img, false, false), new UringIoFactory(), 1, 1, 0);
        BlkRig rig = rigs.get(0);
        Random rnd = new Random(1);
        List<Long> tokens = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            byte[] d = new byte[BlkRig.MAX_DATA];
            rnd.nextBytes(d);
            tokens.add(rig.add(i % 2 == 0 ? T_OUT : T_FLUSH, (long) i * BlkRig.MAX_DATA / 512, i % 2 == 0 ? d : new byte[0], 0, 4, rnd));
        }
        rig.publishAndKick();
        // stop once the I/O thread has popped something (a stop before the first pop rightly serves nothing)
        Await.await(() -> device.stats(0).inFlight() != 0 || device.stats(0).requests() != 0, Duration.ofSeconds(10),
                "the I/O thread popped a request");
        queues.stop(0);
        // stop returned: nothing may still be in flight, everything popped went back to the driver
        rig.collect();
        int done = rig.status.size();
        assertTrue(done > 0, "the queue served nothing before stopping");
        for (long t : rig.status.keySet()) {
            assertEquals(S_OK, rig.statusOf(t));
        }
        assertEquals(0, device.stats(0).inFlight());
        assertEquals(done, device.stats(0).requests());
    }

    @Test
    void discardAndWriteZeroesThroughIoUring() throws Exception {
        assumeTrue(UringIoFactory.available());
        Path img = image(DISK);
        start(FileBackend.open(img, false, false), new UringIoFactory(), 1, 1, 0);
        BlkRig rig = rigs.get(0);
        byte[] ones = new byte[BlkRig.MAX_DATA];
        Arrays.fill(ones, (byte) 1);
        Random rnd = new Random(3);
        for (int i = 0; i < 4; i++) {
            rig.add(T_OUT, i * 128L, ones, 0, 1, rnd);
        }
        rig.publishAndKick();
        rig.awaitAll();
        // discard block 0 and 2 (two segments), write-zeroes block 1 (no unmap) and 3 (unmap)
        long d = rig.add(T_DISCARD, 0, dwz(new long[] {0, 128, 0}, new long[] {256, 128, 0}), 0, 1, rnd);
        long z = rig.add(T_WRITE_ZEROES, 0, dwz(new long[] {128, 128, 0}, new long[] {384, 128, DWZ_F_UNMAP}), 0, 1, rnd);
        rig.publishAndKick();
        rig.awaitAll();
        assertEquals(S_OK, rig.statusOf(d));
        assertEquals(S_OK, rig.statusOf(z));
        byte[] file = Files.readAllBytes(img);
        for (int i = 0; i < 4 * BlkRig.MAX_DATA; i++) {
            assertEquals(0, file[i], "byte " + i);
        }
    }

    static byte[] dwz(long[]... segs) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16 * segs.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (long[] s : segs) {
            b.putLong(s[0]).putInt((int) s[1]).putInt((int) s[2]);
        }
        return b.array();
    }

    /**
     * A read that runs past the end of a shrunken image reads zeros from there; on tmpfs the
     * inline copy comes back short and io_uring finishes the read.
     */
    @ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"disk", "tmpfs"})
    void readPastTheEndOfAShrunkenImageReadsZeros(String where) throws Exception {
        assumeTrue(UringIoFactory.available());
        Path img = where.equals("tmpfs") ? tmpfsImage(DISK) : image(DISK);
        byte[] ones = new byte[(int) DISK];
        Arrays.fill(ones, (byte) 7);
        Files.write(img, ones);
        start(FileBackend.open(img, false, false), capturing(new UringIoFactory()), 1, 1, 0);
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(DISK - 4096 - 512); // the device still believes the old size
        }
        BlkRig rig = rigs.get(0);
        long t = rig.add(T_IN, (DISK - 8192) / 512, null, 8192, 3, new Random(5));
        rig.publishAndKick();
        rig.awaitAll();
        assertEquals(S_OK, rig.statusOf(t));
        byte[] got = rig.take(t, 8192);
        for (int i = 0; i < 8192; i++) {
            assertEquals(i < 8192 - 4096 - 512 ? 7 : 0, got[i], "byte " + i);
        }
        assertEquals(0L, readsInline(), "the short read went on through io_uring");
    }

    /**
     * The I/O thread allocates nothing per request in steady state (counted by the JVM's
     * per-thread allocation counter, not timed): 20,000 requests after a warm-up (so that the
     * JIT has compiled the path) allocate less than 5,000 bytes in all; measured: 0.
     */
    @ParameterizedTest(name = "io_uring={0}")
    @CsvSource({"true", "false"})
    void noAllocationPerRequestOnTheIoThread(boolean uring) throws Exception {
        if (uring) {
            assumeTrue(UringIoFactory.available());
        }
        var mx = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        assumeTrue(mx.isThreadAllocatedMemorySupported());
        Path img = image(DISK);
        start(uring ? FileBackend.open(img, false, false) : new RamBackend(DISK), new UringIoFactory(uring), 1, 1, 0);
        long[] r = allocatedOnTheIoThread(mx, new Random(11), rnd -> 8L * rnd.nextInt(1000), 10000, 1250);
        assertTrue(r[0] < r[1] / 4, r[0] + " bytes allocated on the I/O thread for " + r[1] + " requests");
    }

    /**
     * Batches of 16 requests (writes and reads, 1-3 buffers each) on queue 0 of the started device:
     * {@code warm} batches, then {@code measured} ones counted. Returns the bytes the I/O thread
     * allocated over the measured batches and their requests.
     */
    private long[] allocatedOnTheIoThread(com.sun.management.ThreadMXBean mx, Random rnd,
                                          java.util.function.ToLongFunction<Random> sector, int warm, int measured) throws Exception {
        long ioThread = threads.loopOf(0).submit(() -> Thread.currentThread().threadId()).get();
        BlkRig rig = rigs.get(0);
        byte[] data = new byte[4096];
        Runnable batch = () -> {
            long[] tokens = new long[16];
            for (int i = 0; i < 16; i++) {
                tokens[i] = rig.add(i % 2 == 0 ? T_OUT : T_IN, sector.applyAsLong(rnd), i % 2 == 0 ? data : null, 4096, 1 + i % 3, rnd);
            }
            rig.publishAndKick();
            try {
                rig.awaitAll();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
            for (long t : tokens) {
                assertEquals(S_OK, rig.statusOf(t));
                rig.take(t, 0);
            }
            rig.status.clear();
            rig.usedLength.clear();
        };
        for (int i = 0; i < warm; i++) {
            batch.run();
        }
        long before = mx.getThreadAllocatedBytes(ioThread);
        for (int i = 0; i < measured; i++) {
            batch.run();
        }
        return new long[] {mx.getThreadAllocatedBytes(ioThread) - before, 16L * measured};
    }

    /**
     * Issue 27: the same on an RBD image of a real single-node Ceph cluster: the queue's I/O
     * thread submits to librbd and collects its completions (the image's eventfd,
     * rbd_poll_io_events) without allocating per request; librbd's own threads allocate in C++,
     * not counted here. 8,000 requests after a warm-up of 48,000.
     */
    @Test
    void noAllocationPerRequestOnTheIoThreadOnRbd(@org.junit.jupiter.api.io.TempDir Path cephDir) throws Exception {
        String missing = org.jvirtio.testkit.CephCluster.missing();
        assumeTrue(missing == null, missing);
        var mx = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        assumeTrue(mx.isThreadAllocatedMemorySupported());
        try (org.jvirtio.testkit.CephCluster ceph = org.jvirtio.testkit.CephCluster.start(cephDir.resolve("c"))) {
            ceph.createImage("rbd/alloc", "16M");
            org.jvirtio.blk.rbd.RbdBackend rbd = org.jvirtio.blk.rbd.RbdBackend.open(org.jvirtio.blk.rbd.RbdImageName.parse("rbd/alloc"),
                    org.jvirtio.blk.rbd.RbdOptions.defaults().withConf(ceph.conf()), false, 1);
            start(rbd, new UringIoFactory(true), 1, 1, 0);
            // 4 KiB blocks in turn over the first 6.25 MiB of the image
            int[] n = {0};
            long[] r = allocatedOnTheIoThread(mx, new Random(13), rnd -> 8L * (n[0]++ % 1600), 3000, 500);
            assertTrue(r[0] < r[1] / 4, r[0] + " bytes allocated on the I/O thread for " + r[1] + " RBD requests");
            System.out.println("DataplaneTest: " + r[0] + " bytes allocated on the I/O thread for " + r[1] + " RBD requests");
            // Stopped here, while the cluster still runs (closing the image talks to it).
            queues.stopAll();
            device.reset();
            device = null;
            threads.close();
            threads = null;
            backend.close();
            backend = null;
        }
    }

    @Test
    void guestMistakesAnswerErrorsOnTheDataplaneToo() throws Exception {
        start(new RamBackend(DISK), BlkIoFactory.INLINE, 1, 1, 20);
        BlkRig rig = rigs.get(0);
        Random rnd = new Random(9);
        long past = rig.add(T_IN, DISK / 512, null, 512, 1, rnd);
        long odd = rig.add(T_OUT, 0, new byte[100], 0, 1, rnd);
        long unknown = rig.add(99, 0, new byte[0], 0, 0, rnd);
        long ok = rig.add(T_GET_ID, 0, null, 20, 1, rnd);
        rig.publishAndKick();
        rig.awaitAll();
        assertEquals(S_IOERR, rig.statusOf(past));
        assertEquals(S_IOERR, rig.statusOf(odd));
        assertEquals(S_UNSUPP, rig.statusOf(unknown));
        assertEquals(S_OK, rig.statusOf(ok));
        assertEquals("dp", new String(rig.take(ok, 2), java.nio.charset.StandardCharsets.US_ASCII));
        assertEquals(3, device.stats(0).errors());
    }
}
