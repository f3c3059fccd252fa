package org.jvirtio.blk.dataplane;

import java.nio.file.Path;
import java.util.Random;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.blk.BlkIoFactory;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.RamBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.testkit.transports.TransportRig;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.jvirtio.blk.VirtioBlk.*;
import static org.jvirtio.blk.dataplane.HostileRingFuzzTest.needsReset;
import static org.jvirtio.blk.dataplane.HostileRingFuzzTest.pick;
import static org.jvirtio.blk.dataplane.HostileRingFuzzTest.pickLong;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link HostileRingFuzzTest} for packed rings (issue 25): a hostile guest's packed descriptor
 * ring, randomised, served by virtio-blk through each transport. A round is a well-formed batch
 * of requests (headers, data pieces, status bytes; direct chains and indirect tables, types,
 * sectors and lengths near every limit), the same with a few bytes flipped anywhere in the ring,
 * the tables or the headers, or plausible garbage (any flags, wrap bits, buffer ids, NEXT chains
 * around the ring, indirect tables of any length). Whatever the guest wrote, serving must not
 * throw, must not write outside the buffers offered (a guard page), every used descriptor must
 * name a buffer id below the ring size with a length no larger than that chain's writable bytes,
 * and an unflipped well-formed batch must be answered whole; otherwise the ring may be broken
 * (DEVICE_NEEDS_RESET, the device reset for the next round) or stop where a descriptor is not
 * available, and only there: with the engine on the test's thread and inline I/O, a ring not
 * found broken must have stopped at a descriptor that is not available for its wrap counter
 * (a device that quietly stops short of a chain it cannot take fails this). Seeded: a failure names the seed and round ({@code -Djvirtio.fuzz.seed},
 * {@code -Djvirtio.fuzz.rounds}).
 */
class PackedHostileRingFuzzTest {
    static final int QSIZE = 32;
    static final long RING = 0x1000;
    static final long DRIVER = 0x2000;
    static final long DEVICE = 0x3000;
    static final long GUARD = 0x4000;
    static final int GUARD_LEN = 0x1000;
    static final long HDRS = 0x8000;
    static final long STATUS = 0xA000;
    static final long TABLES = 0xB000;
    static final long A_SIZE = 1 << 20;
    static final long B_START = 0x140000;
    static final long B_SIZE = 256 << 10;
    static final long DISK = 1 << 20;
    static final int AVAIL_1 = 1 << 7; // AVAIL set, USED clear: available for wrap counter 1
    static final long PACKED = ~0L;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"DIRECT, ram-inline", "DIRECT, file-io_uring", "VHOST_USER, ram-inline", "VHOST_USER, file-io_uring", "MMIO, ram-inline"})
    void servingGarbageNeverThrowsAndAnswersOrBreaks(TransportRig.Kind transport, String kind) throws Exception {
        assumeTrue(!kind.endsWith("io_uring") || UringIoFactory.available(), "io_uring is not available here");
        int rounds = Integer.getInteger("jvirtio.fuzz.rounds", transport == TransportRig.Kind.DIRECT ? 600 : 200);
        long seed = Long.getLong("jvirtio.fuzz.seed", 0x7061636b6564L);
        MemoryMapping ma = MemoryMapping.memfd("a", A_SIZE);
        MemoryMapping mb = MemoryMapping.memfd("b", B_SIZE);
        GuestMemory mem = GuestMemory.of(GuestRegion.of(0, ma), GuestRegion.of(B_START, mb));
        ma.release();
        mb.release();
        BlockBackend backend;
        if (kind.startsWith("ram")) {
            backend = new RamBackend(DISK);
        } else {
            Path img = dir.resolve("disk.img");
            try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
                f.setLength(DISK);
            }
            backend = FileBackend.open(img, false, false);
        }
        BlkIoFactory io = kind.endsWith("io_uring") ? new UringIoFactory(true, true) : BlkIoFactory.INLINE;
        VirtioBlkDevice device = new VirtioBlkDevice(backend, new BlkOptions(1, QSIZE, "fuzz", false), io);
        Random rnd = new Random(seed);
        ch.qos.logback.classic.Logger log = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("org.jvirtio");
        ch.qos.logback.classic.Level level = log.getLevel();
        log.setLevel(ch.qos.logback.classic.Level.ERROR);
        int broken = 0;
        int answered = 0;
        int whole = 0;
        TransportRig rig = transport.start(device, mem, PACKED);
        try {
            assertTrue(VirtioFeatures.has(rig.features(), VirtioFeatures.RING_PACKED), "packed rings negotiated");
            for (int round = 0; round < rounds; round++) {
                String where = "seed " + seed + " round " + round + " (" + transport + " " + kind + ")";
                Round r = fill(mem, rnd);
                boolean guardNamed = names(mem, GUARD, GUARD_LEN, false);
                boolean ringNamed = names(mem, RING, DEVICE + 4 - RING, true);
                boolean isBroken;
                int stoppedAt;
                int[] used = new int[1];
                try {
                    rig.startQueue(0, QSIZE, RING, DRIVER, DEVICE);
                    TransportRig t = rig;
                    // A checkable batch must be answered whole; others settle briefly (broken, or stopped where nothing is available).
                    boolean settled = rig.kickAndWait(0, () -> needsReset(t) || r.checkable && usedChains(mem, r, null) == r.chains,
                            r.checkable ? 10_000 : 30);
                    stoppedAt = rig.stopQueue(0); // returns once nothing is in flight
                    isBroken = rig.needsReset();
                    if (r.checkable && !ringNamed) {
                        assertTrue(settled || isBroken, where + ": a well-formed batch of " + r.chains + " chains was neither answered nor refused ("
                                + usedChains(mem, r, null) + " answered)");
                    }
                } catch (Throwable e) {
                    throw new AssertionError(where + ": serving threw", e);
                }
                for (int i = 0; i < GUARD_LEN && !guardNamed; i += 8) {
                    assertEquals(0x5a5a_0000_0000_0000L | i, mem.readU64(GUARD + i), where + ": guard page written at +" + i);
                }
                if (transport == TransportRig.Kind.DIRECT && !kind.endsWith("io_uring") && !isBroken && !ringNamed) {
                    // The engine on this thread with inline I/O serves until the ring shows nothing
                    // available (no completion to wait for, no slot short): a ring it did not find
                    // broken, flipped or not, stops only where the next descriptor is not available
                    // for its wrap counter, as a split ring stops only at avail->idx.
                    int pos = stoppedAt & 0x7fff;
                    int wrap = stoppedAt >>> 15 & 1;
                    int flags = mem.readU16(RING + 16L * pos + 14);
                    boolean available = (flags >>> 7 & 1) == wrap && (flags >>> 15 & 1) != wrap;
                    assertFalse(available, where + ": the device stopped at descriptor " + pos + "/" + wrap
                            + ", which is available (flags 0x" + Integer.toHexString(flags) + "), without finding the ring broken");
                }
                if (!ringNamed) {
                    answered += usedChains(mem, r, where);
                    if (r.checkable && !isBroken) {
                        whole++;
                    }
                }
                if (isBroken) {
                    broken++;
                    rig.reset();
                    rig.restart(PACKED);
                }
            }
        } finally {
            log.setLevel(level);
            rig.close();
            backend.close();
            mem.release();
        }
        System.out.printf("packed fuzz %s %s: %d rounds, %d broken rings, %d chains answered, %d well-formed batches whole%n",
                transport, kind, rounds, broken, answered, whole);
        assertTrue(broken > rounds / 20, "broken rings: " + broken);
        assertTrue(answered > rounds, "answered chains: " + answered);
        assertTrue(whole > rounds / 5, "well-formed batches answered whole: " + whole);
    }

    /** One round's ring: chains made available, their descriptor counts and writable bytes by buffer id (-1: not known). */
    static final class Round {
        int chains;
        boolean checkable;
        final int[] descs = new int[QSIZE];
        final long[] writable = new long[QSIZE];
        /** Each position's len/id/flags word as the guest left it: a used descriptor is one the device changed. */
        final long[] before = new long[QSIZE];
    }

    /**
     * Counts the used descriptors from position 0 (wrap counter 1), each skipping its chain's
     * descriptors. With {@code where}, checks each: a buffer id below the ring size, and a length
     * within the chain's writable bytes where the round knows them.
     */
    static int usedChains(GuestMemory mem, Round r, String where) {
        int pos = 0;
        int n = 0;
        while (pos < QSIZE) {
            long b = RING + 16L * pos;
            int flags = mem.readU16(b + 14);
            if ((flags & 0x8080) != 0x8080 || mem.readU64(b + 8) == r.before[pos]) {
                break;
            }
            int id = mem.readU16(b + 12);
            long len = mem.readU32(b + 8);
            if (where != null) {
                assertTrue(id < QSIZE, where + ": used buffer id " + id + " at position " + pos);
                if (r.writable[id] >= 0) {
                    assertTrue(len <= r.writable[id], where + ": used length " + len + " of id " + id + " > its writable " + r.writable[id]);
                }
            } else if (id >= QSIZE) {
                break;
            }
            n++;
            pos += Math.max(1, r.descs[id]);
        }
        return n;
    }

    private static Round fill(GuestMemory mem, Random rnd) {
        for (long a = RING; a < DEVICE + 8; a += 8) {
            mem.writeU64(a, 0);
        }
        // The tables too: a stale entry of an earlier round that names the ring would exclude
        // every later round from the counts (a long run found fewer and fewer rounds checked).
        for (long a = TABLES; a < TABLES + 0x1000; a += 8) {
            mem.writeU64(a, 0);
        }
        for (int i = 0; i < GUARD_LEN; i += 8) {
            mem.writeU64(GUARD + i, 0x5a5a_0000_0000_0000L | i);
        }
        Round r = new Round();
        java.util.Arrays.fill(r.writable, -1);
        // The driver's event suppression: usually ENABLE, sometimes anything.
        mem.writeU32(DRIVER, rnd.nextInt(8) == 0 ? rnd.nextInt() : 0);
        if (rnd.nextInt(3) == 0) {
            garbage(mem, rnd, r);
        } else {
            wellFormed(mem, rnd, r);
            int flips = rnd.nextInt(3) == 0 ? 1 + rnd.nextInt(3) : 0;
            r.checkable = flips == 0;
            long[] areas = {RING, RING + 16L * QSIZE, HDRS, HDRS + 0x800, TABLES, TABLES + 0x1000};
            for (int f = 0; f < flips; f++) {
                int k = rnd.nextInt(areas.length / 2) * 2;
                mem.writeU8(areas[k] + rnd.nextLong(areas[k + 1] - areas[k]), rnd.nextInt(256));
            }
            if (flips > 0) {
                java.util.Arrays.fill(r.writable, -1);
            }
        }
        for (int p = 0; p < QSIZE; p++) {
            r.before[p] = mem.readU64(RING + 16L * p + 8);
        }
        return r;
    }

    private static void wellFormed(GuestMemory mem, Random rnd, Round r) {
        int n = 1 + rnd.nextInt(QSIZE);
        int pos = 0;
        long data = 0x10000;
        for (int c = 0; c < n; c++) {
            int type = pick(rnd, new int[] {T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES, 5, -1});
            long sector = pickLong(rnd, new long[] {0, 1, DISK / 512 - 1, DISK / 512, -1L, rnd.nextLong(DISK / 512)});
            int pieces = 1 + rnd.nextInt(4);
            boolean indirect = rnd.nextInt(4) == 0;
            int needed = 2 + pieces;
            if (pos + (indirect ? 1 : needed) > QSIZE) {
                break;
            }
            long hdr = HDRS + 32L * c;
            mem.writeU32(hdr, type);
            mem.writeU32(hdr + 4, 0);
            mem.writeU64(hdr + 8, sector);
            boolean out = type == T_OUT || type == T_DISCARD || type == T_WRITE_ZEROES;
            long[] addr = new long[needed];
            int[] len = new int[needed];
            boolean[] write = new boolean[needed];
            addr[0] = hdr;
            len[0] = rnd.nextInt(32) == 0 ? rnd.nextInt(17) : 16;
            for (int p = 0; p < pieces; p++) {
                int l = pick(rnd, new int[] {512, 1024, 4096, 16, 1, 0, 511});
                addr[1 + p] = switch (rnd.nextInt(100)) {
                    case 0 -> A_SIZE - rnd.nextInt(600);
                    case 1 -> B_START + B_SIZE - rnd.nextInt(600);
                    default -> data;
                };
                data += 8192;
                len[1 + p] = l;
                write[1 + p] = !out;
            }
            addr[needed - 1] = STATUS + c;
            len[needed - 1] = 1;
            write[needed - 1] = true;
            long writable = 0;
            for (int d = 0; d < needed; d++) {
                writable += write[d] ? Integer.toUnsignedLong(len[d]) : 0;
            }
            int id = c; // ids 0..n-1, each once
            r.writable[id] = writable;
            if (indirect) {
                long table = TABLES + (long) c * 16 * 8;
                for (int d = 0; d < needed; d++) {
                    writeDesc(mem, table + 16L * d, addr[d], len[d], 0, write[d] ? 2 : 0);
                }
                writeDesc(mem, RING + 16L * pos, table, 16 * needed, id, AVAIL_1 | 4);
                r.descs[id] = 1;
                pos++;
            } else {
                for (int d = 0; d < needed; d++) {
                    writeDesc(mem, RING + 16L * (pos + d), addr[d], len[d], id, AVAIL_1 | (write[d] ? 2 : 0) | (d < needed - 1 ? 1 : 0));
                }
                r.descs[id] = needed;
                pos += needed;
            }
            r.chains++;
        }
    }

    /** Any descriptor: flags of any wrap, NEXT anywhere, ids in and out of range, indirect tables of any length. */
    private static void garbage(GuestMemory mem, Random rnd, Round r) {
        for (int d = 0; d < QSIZE; d++) {
            long a = pickLong(rnd, new long[] {0x10000 + rnd.nextInt(0x10000), A_SIZE - rnd.nextInt(64), A_SIZE + rnd.nextInt(0x1000),
                    B_START + B_SIZE - rnd.nextInt(64), rnd.nextLong(), -1L, HDRS});
            int l = pick(rnd, new int[] {0, 1, 15, 16, 17, 512, 4096, -1, rnd.nextInt(1 << 20)});
            int flags = rnd.nextInt(16) == 0 ? rnd.nextInt(0x10000)
                    : pick(rnd, new int[] {AVAIL_1, AVAIL_1, AVAIL_1, 0x8000, 0x8080, 0}) | rnd.nextInt(8);
            int id = rnd.nextInt(8) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(QSIZE);
            if ((flags & 4) != 0 && rnd.nextBoolean()) {
                a = TABLES;
                l = 16 * (1 + rnd.nextInt(8)) + (rnd.nextInt(10) == 0 ? 8 : 0);
                for (int t = 0; t < l / 16; t++) {
                    writeDesc(mem, a + 16L * t, 0x10000 + rnd.nextInt(0x10000), pick(rnd, new int[] {1, 16, 512}), 0, rnd.nextInt(8));
                }
            }
            writeDesc(mem, RING + 16L * d, a, l, id, flags);
        }
        for (long h = HDRS; h < HDRS + 0x800; h += 32) {
            mem.writeU32(h, pick(rnd, new int[] {T_IN, T_OUT, T_FLUSH, T_GET_ID, rnd.nextInt()}));
            mem.writeU64(h + 8, pickLong(rnd, new long[] {0, DISK / 512 - 1, -1L, rnd.nextLong()}));
        }
        // Chain lengths and writable bytes unknown: only ids and the guard are checked.
        java.util.Arrays.fill(r.descs, 1);
    }

    /** Whether some descriptor (writable ones only, if asked) in the ring or the table area overlaps {@code [start, start + len)}. */
    static boolean names(GuestMemory mem, long start, long len, boolean writableOnly) {
        for (long[] area : new long[][] {{RING, RING + 16L * QSIZE}, {TABLES, TABLES + 0x1000}}) {
            for (long e = area[0]; e < area[1]; e += 16) {
                boolean writable = (mem.readU16(e + 14) & 2) != 0;
                if ((writable || !writableOnly) && HostileRingFuzzTest.overlaps(mem.readU64(e), mem.readU32(e + 8), start, len)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static void writeDesc(GuestMemory mem, long at, long addr, int len, int id, int flags) {
        mem.writeU64(at, addr);
        mem.writeU32(at + 8, Integer.toUnsignedLong(len));
        mem.writeU16(at + 12, id & 0xffff);
        mem.writeU16(at + 14, flags & 0xffff);
    }
}
