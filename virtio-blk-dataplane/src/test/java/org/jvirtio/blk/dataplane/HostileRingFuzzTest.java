package org.jvirtio.blk.dataplane;

import java.nio.file.Path;
import java.util.Random;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.blk.BlkIoFactory;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.RamBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.jvirtio.testkit.transports.TransportRig;
import org.jvirtio.ring.SplitRingLayout;

import static org.jvirtio.blk.VirtioBlk.*;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A hostile guest, randomised: descriptor tables, indirect tables, avail rings and request
 * headers made of plausible garbage (addresses at region edges, in the hole between regions and
 * far outside; lengths of 0, 1, 15, 16, 4 GiB - 1; any flags; loops; heads out of range; types,
 * sectors and discard segments near every limit), sometimes well-formed requests with a few
 * bytes flipped. Whatever the guest wrote, serving must not throw, must leave nothing in flight,
 * and must either return every chain it popped (a status in the last byte, a used length no
 * larger than the chain's writable bytes) or mark the ring broken. Writes outside the buffers
 * the guest offered are checked against a guard page (in rounds where no descriptor names it).
 *
 * <p>Through each way a request reaches the disk: inline on a RAM disk and on a file,
 * io_uring (iovecs handed to the kernel as raw addresses: a translation mistake would show here
 * as a write into the guard page or a crashed JVM), and the thread-pool fallback; and through
 * each transport (virtio-testkit's {@link TransportRig}): the engine on the test's thread, a
 * vhost-user backend, an MMIO window, the same generator and checks for all (issue 11). Over a
 * transport a broken ring is seen as DEVICE_NEEDS_RESET, and the device is reset for the next
 * round, as a driver would.
 *
 * <p>Seeded: a failure names the seed and round. {@code -Djvirtio.fuzz.rounds=N} and
 * {@code -Djvirtio.fuzz.seed=S} run longer or elsewhere (CI: 1,000 rounds per way, seconds).
 */
class HostileRingFuzzTest {
    static final int QSIZE = 32;
    static final long DESC = 0x1000;
    static final long AVAIL = 0x2000;
    static final long USED = 0x3000;
    /** Region A: [0, 1 MiB); a hole; region B: [B_START, B_START + 256 KiB). */
    static final long A_SIZE = 1 << 20;
    static final long B_START = 0x140000;
    static final long B_SIZE = 256 << 10;
    /** Written with a pattern; descriptors never name it unless they are part of a broken ring. */
    static final long GUARD = 0x4000;
    static final int GUARD_LEN = 0x1000;
    static final long DISK = 1 << 20;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"DIRECT, ram-inline", "DIRECT, file-inline", "DIRECT, file-io_uring", "DIRECT, tmpfs-io_uring", "DIRECT, file-pool",
        "VHOST_USER, ram-inline", "VHOST_USER, file-io_uring", "MMIO, ram-inline", "MMIO, file-io_uring"})
    void servingGarbageNeverThrowsAndAnswersOrBreaks(TransportRig.Kind transport, String kind) throws Exception {
        assumeTrue(!kind.endsWith("io_uring") || UringIoFactory.available(), "io_uring is not available here");
        // -Djvirtio.fuzz.only="DIRECT ram-inline" runs one way (to replay a round, say)
        String only = System.getProperty("jvirtio.fuzz.only");
        assumeTrue(only == null || only.equals(transport + " " + kind), "not selected by jvirtio.fuzz.only");
        // Over a transport each round restarts the ring through it (and resets a broken device): fewer rounds.
        int rounds = Integer.getInteger("jvirtio.fuzz.rounds", transport == TransportRig.Kind.DIRECT ? 1000 : 300);
        // A soak (bench/soak.sh): as many rounds as fit, printing the process's fds and mappings as it goes.
        long minutes = Long.getLong("jvirtio.fuzz.minutes", 0);
        long until = System.nanoTime() + minutes * 60_000_000_000L;
        if (minutes > 0) {
            rounds = Integer.MAX_VALUE;
        }
        long seed = Long.getLong("jvirtio.fuzz.seed", 0x6a7669727469L);
        MemoryMapping ma = MemoryMapping.memfd("a", A_SIZE);
        MemoryMapping mb = MemoryMapping.memfd("b", B_SIZE);
        GuestMemory mem = GuestMemory.of(GuestRegion.of(0, ma), GuestRegion.of(B_START, mb));
        ma.release();
        mb.release();
        BlockBackend backend = kind.startsWith("ram") ? new RamBackend(DISK) : fileBackend(kind.startsWith("tmpfs"));
        BlkIoFactory io = switch (kind) {
            // tmpfs: reads are copied on the I/O thread (preadv), not through io_uring
            case "file-io_uring", "tmpfs-io_uring" -> new UringIoFactory(true, true);
            case "file-pool" -> new UringIoFactory(false, true);
            default -> BlkIoFactory.INLINE;
        };
        VirtioBlkDevice device = new VirtioBlkDevice(backend, new BlkOptions(1, QSIZE, "fuzz", false), io);
        Random rnd = new Random(seed);
        // Every broken ring and failed request logs a WARN: thousands of lines. Quiet for the run.
        ch.qos.logback.classic.Logger log = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("org.jvirtio");
        ch.qos.logback.classic.Level level = log.getLevel();
        log.setLevel(ch.qos.logback.classic.Level.ERROR);
        int broken = 0;
        int answered = 0;
        // Split rings: this fuzz writes split ring structures (PackedRingFuzzTest is the packed one).
        TransportRig rig = transport.start(device, mem, TransportRig.ALL_SPLIT);
        try {
            for (int round = 0; round < rounds; round++) {
                if (minutes > 0 && round % 20_000 == 0) {
                    System.out.printf("soak %s %s: round %d, %d fds, %d mappings%n", transport, kind, round, org.jvirtio.testkit.OpenFds.count(),
                            java.nio.file.Files.readAllLines(Path.of("/proc/self/maps")).size());
                    if (System.nanoTime() - until > 0) {
                        rounds = round;
                        break;
                    }
                }
                String where = "seed " + seed + " round " + round + " (" + transport + " " + kind + ")";
                long[] writableBytes = new long[QSIZE];
                fill(mem, rnd, writableBytes);
                boolean guardNamed = namesGuard(mem);
                boolean usedNamed = writableNames(mem, USED, SplitRingLayout.usedBytes(QSIZE));
                boolean availNamed = writableNames(mem, AVAIL, SplitRingLayout.availBytes(QSIZE));
                int availIdx = mem.readU16(AVAIL + 2);
                boolean isBroken;
                try {
                    rig.startQueue(0, QSIZE, DESC, AVAIL, USED);
                    // The device answers every chain up to avail->idx, or finds the ring broken.
                    TransportRig r = rig;
                    boolean settled = rig.kickAndWait(0, () -> mem.readU16(USED + 2) == availIdx || needsReset(r), 10_000);
                    rig.stopQueue(0); // returns once nothing is in flight
                    isBroken = rig.needsReset();
                    assertTrue(settled || isBroken || availNamed || usedNamed, where + ": the device neither answered up to avail->idx nor broke the ring");
                } catch (Throwable t) {
                    throw new AssertionError(where + ": serving threw", t);
                }
                for (int i = 0; i < GUARD_LEN && !guardNamed; i += 8) {
                    assertEquals(guardWord(i), mem.readU64(GUARD + i), where + ": guard page written at +" + i);
                }
                if (isBroken) {
                    broken++;
                    rig.reset(); // a broken device stays broken until the driver resets it
                    rig.restart(TransportRig.ALL_SPLIT);
                } else if (!usedNamed) {
                    int used = mem.readU16(USED + 2);
                    for (int i = 0; i < used; i++) {
                        long e = USED + 4 + 8L * (i % QSIZE);
                        int id = (int) mem.readU32(e);
                        long len = mem.readU32(e + 4);
                        assertTrue(id < QSIZE, where + ": used id " + id);
                        assertTrue(len <= writableBytes[id], where + ": used length " + len + " > writable " + writableBytes[id]);
                        answered++;
                    }
                }
            }
        } finally {
            log.setLevel(level);
            rig.close();
            backend.close();
            mem.release();
        }
        System.out.printf("fuzz %s %s: %d rounds, %d broken rings, %d chains answered%n", transport, kind, rounds, broken, answered);
        // The generator must reach both outcomes, or it tests less than it claims.
        assertTrue(broken > rounds / 20, "broken rings: " + broken + ", answered chains: " + answered);
        assertTrue(answered > rounds, "answered chains: " + answered + ", broken rings: " + broken);
    }

    static boolean needsReset(TransportRig rig) {
        try {
            return rig.needsReset();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** A directory under /dev/shm for the tmpfs way, removed after the test. */
    private Path shmDir;

    @org.junit.jupiter.api.AfterEach
    void removeShmDir() throws Exception {
        if (shmDir != null) {
            java.nio.file.Files.deleteIfExists(shmDir.resolve("disk.img"));
            java.nio.file.Files.deleteIfExists(shmDir);
        }
    }

    private BlockBackend fileBackend(boolean tmpfs) throws Exception {
        Path where = dir;
        if (tmpfs) {
            Path shm = Path.of("/dev/shm");
            assumeTrue(java.nio.file.Files.isDirectory(shm) && java.nio.file.Files.getFileStore(shm).type().equals("tmpfs"), "no tmpfs at /dev/shm");
            shmDir = java.nio.file.Files.createTempDirectory(shm, "jvirtio-fuzz");
            where = shmDir;
        }
        Path img = where.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(DISK);
        }
        FileBackend file = FileBackend.open(img, false, false);
        if (tmpfs) {
            assertTrue(file.memoryBacked(), "the tmpfs image is recognised as memory-backed");
        }
        return file;
    }

    /** Whether some descriptor (in the table or the indirect area) names the guard page: a flipped address can. */
    /**
     * Whether some device-writable descriptor names {@code [start, start + len)} of the rings: a
     * guest may hand its own ring out as a buffer, and the device then writes data over it (a
     * used id of 256, say, after 813,922 rounds of the soak), so checks of what that ring holds
     * do not apply to that round.
     */
    static boolean writableNames(GuestMemory mem, long start, long len) {
        return names(mem, start, len, true);
    }

    static boolean namesGuard(GuestMemory mem) {
        return names(mem, GUARD, GUARD_LEN, false);
    }

    /** Whether some descriptor (writable ones only, if asked) in the table or the indirect area overlaps {@code [start, start + len)}. */
    static boolean names(GuestMemory mem, long start, long len, boolean writableOnly) {
        for (long[] area : new long[][] {{DESC, DESC + 16L * QSIZE}, {0xB000, 0xC000}}) {
            for (long e = area[0]; e < area[1]; e += 16) {
                boolean writable = (mem.readU16(e + 12) & 2) != 0;
                if ((writable || !writableOnly) && overlaps(mem.readU64(e), mem.readU32(e + 8), start, len)) {
                    return true;
                }
            }
        }
        return false;
    }

    static boolean overlaps(long addr, long len, long start, long size) {
        return Long.compareUnsigned(addr, start + size) < 0 && Long.compareUnsigned(addr + len, start) > 0
                && Long.compareUnsigned(addr + len, addr) >= 0;
    }

    static long guardWord(int i) {
        return 0x5a5a_0000_0000_0000L | i;
    }

    /**
     * Lays out one round: clears the ring areas, writes the guard, then either a well-formed
     * batch with a few flipped bytes or pure plausible garbage. Records, per head, how many
     * device-writable bytes a chain from it would have if it were valid (an upper bound for the
     * used length; 0 where the chain is not valid anyway).
     */
    private static void fill(GuestMemory mem, Random rnd, long[] writableBytes) {
        for (long a = DESC; a < USED + 4 + 8L * QSIZE + 8; a += 8) {
            mem.writeU64(a, 0);
        }
        for (int i = 0; i < GUARD_LEN; i += 8) {
            mem.writeU64(GUARD + i, guardWord(i));
        }
        int heads;
        if (rnd.nextInt(3) == 0) {
            heads = garbage(mem, rnd);
        } else {
            heads = wellFormed(mem, rnd);
            int flips = rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(3) : 0;
            for (int f = 0; f < flips; f++) {
                long[] areas = {DESC, DESC + 16L * QSIZE, AVAIL, AVAIL + 4 + 2L * QSIZE, 0x8000, 0x9000, 0xB000, 0xC000};
                int k = rnd.nextInt(areas.length / 2) * 2;
                long at = areas[k] + rnd.nextLong(areas[k + 1] - areas[k]);
                mem.writeU8(at, rnd.nextInt(256));
            }
        }
        // Avail: flags, idx, ring, used_event.
        mem.writeU16(AVAIL, rnd.nextInt(8) == 0 ? rnd.nextInt(0x10000) : 0);
        int idx = rnd.nextInt(16) == 0 ? rnd.nextInt(0x10000) : heads;
        mem.writeU16(AVAIL + 2, idx);
        mem.writeU16(AVAIL + 4 + 2L * QSIZE, rnd.nextInt(0x10000));
        // Writable byte bounds: walk each head's direct chain the way a valid one would be.
        for (int h = 0; h < QSIZE; h++) {
            writableBytes[h] = writableBound(mem, h);
        }
    }

    /** Up to QSIZE well-formed requests, each a header, data pieces and a status byte. */
    private static int wellFormed(GuestMemory mem, Random rnd) {
        int n = 1 + rnd.nextInt(QSIZE);
        int nextDesc = 0;
        long hdrArea = 0x8000; // 16 bytes per request header, and discard segments after
        long dataCursor = 0x10000;
        int made = 0;
        for (int r = 0; r < n; r++) {
            int type = pick(rnd, new int[] {T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES, 5, 0x7fffffff, -1});
            long sector = pickLong(rnd, new long[] {0, 1, DISK / 512 - 1, DISK / 512, DISK / 512 + 1, -1L, 1L << 55,
                    rnd.nextLong(DISK / 512)});
            int pieces = 1 + rnd.nextInt(4);
            boolean indirect = rnd.nextInt(4) == 0;
            int needed = 2 + pieces;
            if (!indirect && nextDesc + needed > QSIZE || indirect && nextDesc + 1 > QSIZE) {
                break;
            }
            long hdr = hdrArea;
            hdrArea += 64;
            mem.writeU32(hdr, type);
            mem.writeU32(hdr + 4, rnd.nextInt(4) == 0 ? rnd.nextInt() : 0);
            mem.writeU64(hdr + 8, sector);
            boolean out = type == T_OUT || type == T_DISCARD || type == T_WRITE_ZEROES;
            long[] addr = new long[needed];
            int[] len = new int[needed];
            boolean[] write = new boolean[needed];
            addr[0] = hdr;
            len[0] = rnd.nextInt(32) == 0 ? rnd.nextInt(17) : 16;
            for (int p = 0; p < pieces; p++) {
                int l = pick(rnd, new int[] {512, 1024, 4096, 16, 1, 0, 511, 8192});
                if (type == T_DISCARD || type == T_WRITE_ZEROES) {
                    l = 16 * (rnd.nextInt(3)) + (rnd.nextInt(8) == 0 ? 1 : 0);
                    long seg = dataCursor;
                    for (int s = 0; s + 16 <= l; s += 16) {
                        mem.writeU64(seg + s, pickLong(rnd, new long[] {0, 8, DISK / 512 - 8, DISK / 512, -1L}));
                        mem.writeU32(seg + s + 8, pick(rnd, new int[] {8, 0, 1, 2048, -1}));
                        mem.writeU32(seg + s + 12, pick(rnd, new int[] {0, 0, 1, 2, -1}));
                    }
                }
                // Data in region A, sometimes across the end of region A or in region B.
                long a = switch (rnd.nextInt(400)) {
                    case 0 -> A_SIZE - rnd.nextInt(600);
                    case 1 -> B_START + rnd.nextLong(B_SIZE - 8192);
                    case 2 -> B_START + B_SIZE - rnd.nextInt(600);
                    default -> dataCursor;
                };
                dataCursor += 16384;
                if (dataCursor > A_SIZE - 32768) {
                    dataCursor = 0x10000;
                }
                addr[1 + p] = a;
                len[1 + p] = l;
                write[1 + p] = !out;
            }
            addr[needed - 1] = 0xA000 + r; // status bytes in their own page
            len[needed - 1] = rnd.nextInt(100) == 0 ? 0 : 1;
            write[needed - 1] = rnd.nextInt(200) != 0;
            int head;
            if (indirect) {
                long table = 0xB000 + (long) r * 16 * 8;
                for (int d = 0; d < needed; d++) {
                    writeDesc(mem, table + 16L * d, addr[d], len[d], (write[d] ? 2 : 0) | (d < needed - 1 ? 1 : 0), d + 1);
                }
                head = nextDesc++;
                int tableLen = rnd.nextInt(50) == 0 ? 16 * needed + 8 : 16 * needed;
                writeDesc(mem, DESC + 16L * head, table, tableLen, 4, 0);
            } else {
                head = nextDesc;
                for (int d = 0; d < needed; d++) {
                    writeDesc(mem, DESC + 16L * (head + d), addr[d], len[d], (write[d] ? 2 : 0) | (d < needed - 1 ? 1 : 0), head + d + 1);
                }
                nextDesc += needed;
            }
            mem.writeU16(AVAIL + 4 + 2L * made, head);
            made++;
        }
        return made;
    }

    /** Any descriptor, any avail entry; the ring's validation and the request parser take it from there. */
    private static int garbage(GuestMemory mem, Random rnd) {
        for (int d = 0; d < QSIZE; d++) {
            long a = pickLong(rnd, new long[] {0x10000 + rnd.nextInt(0x10000), A_SIZE - rnd.nextInt(64), A_SIZE + rnd.nextInt(0x1000),
                    B_START + rnd.nextInt(0x1000), B_START + B_SIZE - rnd.nextInt(64), rnd.nextLong(), -1L, 0x8000});
            int l = pick(rnd, new int[] {0, 1, 15, 16, 17, 512, 4096, -1, rnd.nextInt(1 << 20)});
            int flags = rnd.nextInt(16) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(8);
            int next = rnd.nextInt(8) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(QSIZE);
            if ((flags & 4) != 0 && rnd.nextBoolean()) {
                a = 0xB000;
                l = 16 * (1 + rnd.nextInt(8));
                for (int t = 0; t < l / 16; t++) {
                    writeDesc(mem, a + 16L * t, 0x10000 + rnd.nextInt(0x10000), pick(rnd, new int[] {1, 16, 512}),
                            rnd.nextInt(8), rnd.nextInt(10));
                }
            }
            writeDesc(mem, DESC + 16L * d, a, l, flags, next);
        }
        for (long h = 0x8000; h < 0x8000 + 64 * 16; h += 16) {
            mem.writeU32(h, pick(rnd, new int[] {T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES, rnd.nextInt()}));
            mem.writeU64(h + 8, pickLong(rnd, new long[] {0, DISK / 512 - 1, -1L, rnd.nextLong()}));
        }
        int n = rnd.nextInt(QSIZE + 1);
        for (int i = 0; i < QSIZE; i++) {
            mem.writeU16(AVAIL + 4 + 2L * i, rnd.nextInt(8) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(QSIZE));
        }
        return n;
    }

    /** Writable bytes of the chain at {@code head} if it is a valid direct or single-indirect chain; else 0. */
    private static long writableBound(GuestMemory mem, int head) {
        long total = 0;
        int d = head;
        long table = DESC;
        int count = QSIZE;
        for (int steps = 0; steps < 64; steps++) {
            long e = table + 16L * d;
            long len = mem.readU32(e + 8);
            int flags = mem.readU16(e + 12);
            if ((flags & 4) != 0 && table == DESC) {
                table = mem.readU64(e);
                count = (int) (len / 16);
                if (!mem.contains(table, len) || count == 0) {
                    return 0;
                }
                d = 0;
                continue;
            }
            if ((flags & 2) != 0) {
                total += len;
            }
            if ((flags & 1) == 0) {
                return total;
            }
            d = mem.readU16(e + 14);
            if (d >= count) {
                return 0;
            }
        }
        return total;
    }

    private static void writeDesc(GuestMemory mem, long at, long addr, int len, int flags, int next) {
        mem.writeU64(at, addr);
        mem.writeU32(at + 8, Integer.toUnsignedLong(len));
        mem.writeU16(at + 12, flags & 0xffff);
        mem.writeU16(at + 14, next & 0xffff);
    }

    static int pick(Random rnd, int[] from) {
        return from[rnd.nextInt(from.length)];
    }

    static long pickLong(Random rnd, long[] from) {
        return from[rnd.nextInt(from.length)];
    }
}
