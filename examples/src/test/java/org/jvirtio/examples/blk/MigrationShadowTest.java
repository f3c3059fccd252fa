package org.jvirtio.examples.blk;

import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.PackedQueueDriver;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.transport.vhostuser.VhostUserFrontend;
import org.jvirtio.transport.vhostuser.VhostUserProtocol;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Live migration as QEMU's RAM migration sees it (issue 12), without a guest: a Java front-end
 * keeps 32 random reads and writes of 1 to 4 pages (direct and indirect chains, buffers reused
 * as soon as they come back) in flight on each of 2 queues of {@code bin/vhost-user blk} (a
 * separate process, its defaults, io_uring on an image, guest memory in two regions with a
 * hole as QEMU's q35 sends it). Migration starts as QEMU starts it (SET_LOG_BASE, LOG_ALL,
 * SET_VRING_ADDR with VHOST_VRING_F_LOG); a shadow copy of guest memory plays the destination:
 * it takes all of memory once, then in each round the pages the log marks (taken with an atomic
 * exchange per word, as QEMU does) and the pages the "guest" (this test) wrote. At switch-over
 * the guest stops, the device stops as QEMU stops it (SET_STATUS 0, SET_VRING_ENABLE false,
 * GET_VRING_BASE), a last round copies what is marked, and then the shadow must equal guest
 * memory byte for byte: a page that differs is a device write the log missed or one made after
 * the device said it stopped. Every request taken must be answered by then, and every read
 * returns what was last written.
 */
class MigrationShadowTest {
    static final int QUEUES = 2;
    static final int SIZE = 128;
    static final int DEPTH = 32;
    static final int MAX_SEG = 4;
    static final int BLOCKS = 2048;
    static final long MEM = 8 << 20;
    static final long HOLE_START = 0xa0000;
    static final long HOLE_END = 0xc0000;
    static final long HDRS = 0x30000;
    static final long STATUS = 0x31000;
    static final long DATA = 0x100000;
    static final int DATA_PAGES = 1024;
    static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle();

    @TempDir
    Path dir;
    GuestMemory mem;
    MemorySegment shadow;
    final BitSet cpuDirty = new BitSet();
    final BitSet firstUse = new BitSet();
    final QueueDriver[] drivers = new QueueDriver[QUEUES];
    final long[] expected = new long[BLOCKS]; // seq of the last write answered per block; -1: the image's first content
    final BitSet busy = new BitSet(BLOCKS);
    final List<Long> freePages = new ArrayList<>();
    final Random rnd = new Random(7);
    final Slot[][] slots = new Slot[QUEUES][DEPTH];
    final ArrayList<ArrayDeque<Integer>> freeSlots = new ArrayList<>();
    long seq;
    long answered;
    int reads;
    Process backend;

    record Slot(boolean write, int block, int pages, long[] bufs, long seq) {
    }

    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void theShadowCopyEqualsGuestMemoryAtSwitchOver(boolean packed) throws Exception {
        // Split rings unless packed: the layout is what the front-end accepts of the offer.
        long layout = packed ? ~0L : ~VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
        int freshBase = packed ? PackedQueue.FRESH | PackedQueue.FRESH << 16 : 0;
        Path image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            for (int b = 0; b < BLOCKS; b++) {
                f.write(pattern(b, -1));
            }
        }
        Arrays.fill(expected, -1);
        Path socket = dir.resolve("blk.sock");
        MemoryMapping m = MemoryMapping.memfd("guest", MEM);
        // QEMU's q35 below 4 GiB: RAM, the VGA hole, RAM (one file, two regions)
        mem = GuestMemory.of(new GuestRegion(0, HOLE_START, 0x7f00_0000_0000L, m, 0),
                new GuestRegion(HOLE_END, MEM - HOLE_END, 0x7f00_0000_0000L + HOLE_END, m, HOLE_END));
        m.release();
        MemoryMapping logMem = MemoryMapping.memfd("vhost-log", MEM / 4096 / 8);
        EventFd call = EventFd.create(true);
        EventFd[] kicks = new EventFd[QUEUES];
        VhostUserFrontend fe = null;
        VhostUserFrontend.InflightFd inflight = null;
        VhostUserFrontend feB = null;
        VhostUserFrontend.InflightFd inflightB = null;
        EventFd callB = EventFd.create(true);
        EventFd[] kicksB = new EventFd[QUEUES];
        try (Arena arena = Arena.ofConfined()) {
            shadow = arena.allocate(MEM, 4096);
            startBackend(socket, image);
            fe = connect(socket);
            long features = fe.negotiate(~VhostUserProtocol.F_LOG_ALL & layout,
                    VhostUserProtocol.BACKEND_PROTOCOL_FEATURES | (1L << VhostUserProtocol.PROTOCOL_F_LOG_SHMFD));
            assertNotEquals(0, fe.getFeatures() & VhostUserProtocol.F_LOG_ALL, "dirty logging offered");
            inflight = fe.getInflightFd(QUEUES, SIZE);
            fe.setInflightFd(inflight);
            fe.setMemTable(mem);
            for (int q = 0; q < QUEUES; q++) {
                long ring = 0x10000 + 0x4000L * q;
                // the used ring on a page of its own: a page the guest never writes
                // (packed: the device area; the device also writes used descriptors into the descriptor ring)
                drivers[q] = packed
                        ? new PackedQueueDriver(mem, SIZE, ring, ring + 0x800, ring + 0x1000, features, 0x20000 + 0x4000L * q, MAX_SEG + 2)
                        : new SplitQueueDriver(mem, SIZE, ring, ring + 0x800, ring + 0x1000, features, 0x20000 + 0x4000L * q, MAX_SEG + 2);
                assertEquals(packed, drivers[q].packed());
                kicks[q] = EventFd.create(true);
                fe.setVringNum(q, SIZE);
                fe.setVringBase(q, freshBase);
                fe.setVringAddr(q, drivers[q].descAddr(), drivers[q].availAddr(), drivers[q].usedAddr());
                fe.setVringCall(q, call);
                fe.setVringKick(q, kicks[q]);
                fe.setVringEnable(q, true);
                ArrayDeque<Integer> s = new ArrayDeque<>();
                for (int i = 0; i < DEPTH; i++) {
                    s.add(i);
                }
                freeSlots.add(s);
            }
            fe.setStatus(0xf);
            for (int i = 0; i < DATA_PAGES; i++) {
                freePages.add(DATA + 4096L * i);
            }
            firstUse.set(0, DATA_PAGES);
            run(300, call, kicks);

            // Migration starts (vhost_log_global_start): the log, LOG_ALL, each ring's log address
            fe.setLogBase(logMem.fd(), logMem.size(), 0);
            fe.setFeatures(features | VhostUserProtocol.F_PROTOCOL_FEATURES | VhostUserProtocol.F_LOG_ALL);
            for (int q = 0; q < QUEUES; q++) {
                fe.setVringAddrLogged(q, drivers[q].descAddr(), drivers[q].availAddr(), drivers[q].usedAddr(), drivers[q].usedAddr());
            }
            // The first pass copies every page while the device runs; the rounds after it what is dirty
            MemorySegment.copy(mem.slice(0, HOLE_START), 0, shadow, 0, HOLE_START);
            MemorySegment.copy(mem.slice(HOLE_END, MEM - HOLE_END), 0, shadow, HOLE_END, MEM - HOLE_END);
            cpuDirty.clear();
            int copied = 0;
            for (int round = 0; round < 6; round++) {
                run(250 + rnd.nextInt(250), call, kicks);
                copied += sync(logMem.segment());
            }
            // Switch-over: the guest stops (requests stay in flight), then the device (vhost_dev_stop)
            driverWrote();
            fe.setStatus(0);
            int[] base = new int[QUEUES];
            for (int q = 0; q < QUEUES; q++) {
                fe.setVringEnable(q, false);
            }
            for (int q = 0; q < QUEUES; q++) {
                base[q] = fe.getVringBase(q);
            }
            copied += sync(logMem.segment());
            Thread.sleep(200); // a device write after GET_VRING_BASE would land now, unseen by the copy
            StringBuilder diff = new StringBuilder();
            int pages = 0;
            for (long gpa = 0; gpa < MEM; gpa += 4096) {
                if (gpa >= HOLE_START && gpa < HOLE_END) {
                    continue;
                }
                MemorySegment now = mem.slice(gpa, 4096);
                long at = now.mismatch(shadow.asSlice(gpa, 4096));
                if (at >= 0) {
                    pages++;
                    if (pages <= 10) {
                        diff.append(String.format("%n  page 0x%x (%s): first byte differs at +0x%x", gpa, what(gpa), at));
                    }
                }
            }
            assertEquals(0, pages, pages + " pages of guest memory differ from the migrated copy (" + copied + " pages copied after the first pass, "
                    + answered + " requests answered):" + diff + "\nbackend log:\n" + Files.readString(dir.resolve("backend.log")));
            for (int q = 0; q < QUEUES; q++) {
                // Every request taken from the ring was answered before the device said it stopped:
                // split, the used index is GET_VRING_BASE's; packed, its used half is its avail half.
                int usedIdx = packed ? base[q] >>> 16 : mem.readU16(drivers[q].usedAddr() + 2);
                assertEquals(packed ? base[q] & 0xffff : base[q], usedIdx, "queue " + q + ": every request taken from the ring (GET_VRING_BASE 0x"
                        + Integer.toHexString(base[q]) + ") was answered before the device said it stopped");
                drivers[q].pollUsed((head, token, len) -> complete(token));
            }
            long atSwitchOver = answered;

            // The destination: a second backend on the migrated memory (equal to guest memory, as
            // checked) with a fresh inflight region, each ring from the source's GET_VRING_BASE
            Process source = backend;
            Path socketB = dir.resolve("blk-b.sock");
            startBackend(socketB, image);
            feB = connect(socketB);
            feB.negotiate(~VhostUserProtocol.F_LOG_ALL & layout, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES);
            inflightB = feB.getInflightFd(QUEUES, SIZE);
            feB.setInflightFd(inflightB);
            feB.setMemTable(mem);
            for (int q = 0; q < QUEUES; q++) {
                kicksB[q] = EventFd.create(true);
                feB.setVringNum(q, SIZE);
                feB.setVringBase(q, base[q]);
                feB.setVringAddr(q, drivers[q].descAddr(), drivers[q].availAddr(), drivers[q].usedAddr());
                feB.setVringCall(q, callB);
                feB.setVringKick(q, kicksB[q]);
                feB.setVringEnable(q, true);
            }
            feB.setStatus(0xf);
            run(1500, callB, kicksB);
            assertTrue(source.isAlive());
            assertTrue(reads > 1000, "reads checked: " + reads);
            System.out.println("migration shadow: " + atSwitchOver + " requests answered on the source, " + (answered - atSwitchOver)
                    + " on the destination, " + copied + " pages copied after the first pass");
            backend.destroyForcibly();
            backend.waitFor(10, TimeUnit.SECONDS);
            backend = source;
        } finally {
            if (backend != null) {
                backend.destroyForcibly();
                backend.waitFor(10, TimeUnit.SECONDS);
            }
            if (fe != null) {
                fe.close();
            }
            if (feB != null) {
                feB.close();
            }
            for (VhostUserFrontend.InflightFd f : new VhostUserFrontend.InflightFd[] {inflight, inflightB}) {
                if (f != null) {
                    org.jvirtio.api.linux.Libc.close(f.fd());
                }
            }
            for (EventFd[] ks : List.of(kicks, kicksB)) {
                for (EventFd k : ks) {
                    if (k != null) {
                        k.close();
                    }
                }
            }
            call.close();
            callB.close();
            logMem.release();
            mem.release();
        }
    }

    private String what(long gpa) {
        for (int q = 0; q < QUEUES; q++) {
            if (gpa == drivers[q].usedAddr()) {
                return (drivers[q].packed() ? "device area" : "used ring") + " of queue " + q;
            }
        }
        if (gpa == STATUS) {
            return "status bytes";
        }
        if (gpa >= DATA && gpa < DATA + 4096L * DATA_PAGES) {
            return "data buffer";
        }
        return "?";
    }

    /** QEMU's migration_bitmap_sync and a RAM pass: takes the log (atomic exchange per word) and copies the marked and the guest-written pages. */
    private int sync(MemorySegment log) {
        BitSet pages = new BitSet();
        for (long w = 0; w < log.byteSize() / 8; w++) {
            long v = (long) WORD.getAndSet(log, w * 8, 0L);
            while (v != 0) {
                int b = Long.numberOfTrailingZeros(v);
                v &= v - 1;
                pages.set((int) (w * 64 + b));
            }
        }
        pages.or(cpuDirty);
        cpuDirty.clear();
        for (int p = pages.nextSetBit(0); p >= 0; p = pages.nextSetBit(p + 1)) {
            long gpa = (long) p << 12;
            if (gpa < MEM && (gpa < HOLE_START || gpa >= HOLE_END)) {
                MemorySegment.copy(mem.slice(gpa, 4096), 0, shadow, gpa, 4096);
            }
        }
        return pages.cardinality();
    }

    /** The pages the driver writes on every add, publish and interrupt re-enable: descriptor tables, avail rings, indirect tables, headers. */
    private void driverWrote() {
        for (int q = 0; q < QUEUES; q++) {
            long ring = 0x10000 + 0x4000L * q;
            cpuDirty.set((int) (ring >>> 12));
            long ind = 0x20000 + 0x4000L * q;
            cpuDirty.set((int) (ind >>> 12), (int) ((ind + 0x4000) >>> 12));
        }
        cpuDirty.set((int) (HDRS >>> 12));
    }

    /** Keeps every queue {@link #DEPTH} deep until {@code n} more requests are answered. */
    private void run(int n, EventFd call, EventFd[] kicks) throws Exception {
        long target = answered + n;
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (answered < target) {
            for (int q = 0; q < QUEUES; q++) {
                boolean added = false;
                while (!freeSlots.get(q).isEmpty() && submit(q)) {
                    added = true;
                }
                if (added && drivers[q].publish()) {
                    kicks[q].signal();
                }
            }
            driverWrote();
            int got = 0;
            for (int q = 0; q < QUEUES; q++) {
                got += drivers[q].pollUsed((head, token, len) -> complete(token));
            }
            if (got == 0) {
                boolean pending = false;
                for (int q = 0; q < QUEUES; q++) {
                    pending |= drivers[q].enableInterrupts();
                }
                driverWrote();
                if (!pending) {
                    call.await(20);
                }
                assertTrue(System.nanoTime() < deadline, "stuck at " + answered + ": " + Files.readString(dir.resolve("backend.log")));
            }
        }
    }

    private boolean submit(int q) {
        if (drivers[q].freeDescriptors() == 0) {
            return false; // direct chains hold the whole table: wait for one to come back
        }
        int pages = 1 + rnd.nextInt(MAX_SEG);
        int block = -1;
        for (int tries = 0; tries < 20 && block < 0; tries++) {
            int b = rnd.nextInt(BLOCKS - pages);
            if (busy.nextSetBit(b) < 0 || busy.nextSetBit(b) >= b + pages) {
                block = b;
            }
        }
        if (block < 0 || freePages.size() < pages) {
            return false;
        }
        boolean write = rnd.nextInt(10) < 3;
        int slot = freeSlots.get(q).poll();
        int id = q * DEPTH + slot;
        long[] bufs = new long[pages];
        for (int i = 0; i < pages; i++) {
            int k = rnd.nextInt(freePages.size());
            bufs[i] = freePages.get(k);
            freePages.set(k, freePages.get(freePages.size() - 1));
            freePages.remove(freePages.size() - 1);
            checkCanary(bufs[i]);
        }
        long s = seq++;
        busy.set(block, block + pages);
        long hdr = HDRS + 16L * id;
        mem.writeU32(hdr, write ? VirtioBlk.T_OUT : VirtioBlk.T_IN);
        mem.writeU32(hdr + 4, 0);
        mem.writeU64(hdr + 8, 8L * block);
        long[] addrs = new long[pages + 2];
        int[] lens = new int[pages + 2];
        addrs[0] = hdr;
        lens[0] = 16;
        for (int i = 0; i < pages; i++) {
            addrs[1 + i] = bufs[i];
            lens[1 + i] = 4096;
            if (write) {
                mem.write(bufs[i], MemorySegment.ofArray(pattern(block + i, s)));
                cpuDirty.set((int) (bufs[i] >>> 12));
            }
        }
        addrs[pages + 1] = STATUS + id;
        lens[pages + 1] = 1;
        int st = mem.readU8(STATUS + id);
        assertTrue(st == 0xcc || st == 0, "status byte of slot " + id + " changed after its request was answered: 0x" + Integer.toHexString(st));
        mem.writeU8(STATUS + id, 0xee);
        cpuDirty.set((int) (STATUS >>> 12));
        slots[q][slot] = new Slot(write, block, pages, bufs, s);
        long token = ((long) q << 48) | ((long) slot << 32) | (s & 0xffff_ffffL);
        int readable = write ? pages + 1 : 1;
        boolean indirect = rnd.nextBoolean() || drivers[q].freeDescriptors() < pages + 2;
        int head = indirect ? drivers[q].addIndirect(addrs, lens, pages + 2, readable, token)
                : drivers[q].add(addrs, lens, pages + 2, readable, token);
        assertTrue(head >= 0, "descriptors free");
        return true;
    }

    private void complete(long token) {
        int q = (int) (token >>> 48);
        int slot = (int) (token >>> 32) & 0xffff;
        Slot s = slots[q][slot];
        assertNotNull(s, "answered twice: queue " + q + " slot " + slot);
        slots[q][slot] = null;
        int id = q * DEPTH + slot;
        assertEquals(VirtioBlk.S_OK, mem.readU8(STATUS + id), "request " + s);
        for (int i = 0; i < s.pages; i++) {
            if (s.write) {
                expected[s.block + i] = s.seq;
            } else {
                byte[] got = new byte[4096];
                MemorySegment.copy(mem.slice(s.bufs[i], 4096), ValueLayout.JAVA_BYTE, 0, got, 0, 4096);
                assertArrayEquals(pattern(s.block + i, expected[s.block + i]), got, "read of block " + (s.block + i) + " into 0x" + Long.toHexString(s.bufs[i]));
                reads++;
            }
            // The guest owns the page again: a device write to it from now on is a stale one
            mem.slice(s.bufs[i], 4096).fill(CANARY);
            cpuDirty.set((int) (s.bufs[i] >>> 12));
            freePages.add(s.bufs[i]);
        }
        mem.writeU8(STATUS + id, 0xcc);
        busy.clear(s.block, s.block + s.pages);
        freeSlots.get(q).add(slot);
        answered++;
    }

    static final byte CANARY = (byte) 0x5a;
    static final MemorySegment canaryPage = Arena.global().allocate(4096).fill(CANARY);

    private void checkCanary(long page) {
        int i = (int) ((page - DATA) >>> 12);
        if (firstUse.get(i)) {
            firstUse.clear(i);
            return;
        }
        MemorySegment p = mem.slice(page, 4096);
        long off = p.mismatch(canaryPage);
        if (off >= 0) {
            fail(String.format("the free page 0x%x was written after its request was answered (byte +0x%x is 0x%02x)", page, off,
                    p.get(ValueLayout.JAVA_BYTE, off)));
        }
    }

    static byte[] pattern(int block, long seq) {
        ByteBuffer b = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining()) {
            b.putLong(seq * 1_000_003L + block).putLong(~seq ^ block);
        }
        return b.array();
    }

    private void startBackend(Path socket, Path image) throws Exception {
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), "org.jvirtio.runner.VhostUserRunner", "blk",
                "--socket", socket.toString(), "--image", image.toString(), "--queues", "2", "--iothreads", "2", "--queue-size", Integer.toString(SIZE));
        backend = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("backend.log").toFile())).start();
    }

    private VhostUserFrontend connect(Path socket) throws Exception {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (true) {
            VhostUserFrontend fe = null;
            try {
                fe = VhostUserFrontend.connect(socket);
                fe.getFeatures();
                return fe;
            } catch (java.io.IOException e) {
                if (fe != null) {
                    fe.close(); // connected but not answered: not leaked into the next try
                }
                assertTrue(backend.isAlive(), "the backend exited: " + Files.readString(dir.resolve("backend.log")));
                assertTrue(System.nanoTime() < deadline, "the backend never answered");
                Thread.sleep(20);
            }
        }
    }
}
