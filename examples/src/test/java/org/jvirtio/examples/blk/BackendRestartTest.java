package org.jvirtio.examples.blk;

import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitRingLayout;
import org.jvirtio.transport.vhostuser.VhostUserFrontend;
import org.jvirtio.transport.vhostuser.VhostUserProtocol;
import org.jvirtio.testkit.TestMemory;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A backend killed with SIGKILL under load and started again loses nothing (issue 12): a Java
 * front-end that behaves as QEMU with {@code reconnect=1} keeps 32 random 4 KiB writes in flight
 * on {@code bin/vhost-user blk} (a separate process, io_uring on an image), kills it at least three
 * times mid-stream (until a kill caught requests in the backend's hands, at most ten), and after each restart hands the new backend the inflight region it kept
 * (SET_INFLIGHT_FD) and the used index as the ring's base. Every write comes back exactly once,
 * and after a flush every block of the image holds the last pattern written to it.
 */
class BackendRestartTest {
    static final int SIZE = 128;
    static final int DEPTH = 32;
    static final int BLOCKS = 1024;
    static final int TOTAL = 1600;
    static final long RING = 0x10000;
    static final long HDRS = 0x20000;
    static final long STATUS = 0x21000;
    static final long DATA = 0x100000;

    @TempDir
    Path dir;
    GuestMemory mem;
    Path socket;
    Path image;
    Process backend;
    VhostUserFrontend fe;
    VhostUserFrontend.InflightFd inflight;
    QueueDriver driver;
    EventFd kick;
    EventFd call;
    int restarts;

    /** Split or packed rings. */
    boolean packed;

    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void killedThreeTimesUnderQueueDepth32WritesAndNoWriteIsLostOrDoubled(boolean packed) throws Exception {
        this.packed = packed;
        image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(BLOCKS * 4096L);
        }
        socket = dir.resolve("blk.sock");
        mem = TestMemory.memfd(8 << 20);
        kick = EventFd.create(true);
        call = EventFd.create(true);
        try {
            startBackend();
            connect();
            long[] expected = new long[BLOCKS];
            java.util.Arrays.fill(expected, -1);
            BitSet busy = new BitSet(BLOCKS);
            ArrayDeque<Integer> freeSlots = new ArrayDeque<>();
            for (int i = 0; i < DEPTH; i++) {
                freeSlots.add(i);
            }
            int[] slotBlock = new int[DEPTH];
            long[] slotSeq = new long[DEPTH];
            BitSet done = new BitSet(TOTAL);
            Random rnd = new Random(12);
            int submitted = 0;
            int completed = 0;
            int nextKill = 400;
            long deadline = System.nanoTime() + 120_000_000_000L;
            while (completed < TOTAL) {
                boolean added = false;
                while (submitted < TOTAL && !freeSlots.isEmpty()) {
                    int block;
                    do {
                        block = rnd.nextInt(BLOCKS);
                    } while (busy.get(block));
                    busy.set(block);
                    int slot = freeSlots.poll();
                    slotBlock[slot] = block;
                    slotSeq[slot] = submitted;
                    write(slot, block, submitted);
                    submitted++;
                    added = true;
                }
                if (added && driver.publish()) {
                    kick.signal();
                }
                if (added && completed >= nextKill && restarts < 10 && (restarts < 3 || resubmissions() == 0)) {
                    // SIGKILL shortly after a batch went out: some of it is in the backend's hands
                    // (taken from the ring, submitted to io_uring, not yet answered)
                    nextKill += 150;
                    java.util.concurrent.locks.LockSupport.parkNanos(20_000 + rnd.nextInt(300_000));
                    kill();
                    startBackend();
                    connect();
                    continue;
                }
                int[] got = {0};
                driver.pollUsed((head, token, len) -> {
                    int slot = (int) (token >>> 32);
                    int seq = (int) token;
                    assertFalse(done.get(seq), "write " + seq + " answered twice");
                    done.set(seq);
                    assertEquals(VirtioBlk.S_OK, mem.readU8(STATUS + slot), "write " + seq);
                    expected[slotBlock[slot]] = slotSeq[slot];
                    busy.clear(slotBlock[slot]);
                    freeSlots.add(slot);
                    got[0]++;
                });
                completed += got[0];
                if (got[0] == 0) {
                    if (!driver.enableInterrupts()) {
                        call.await(20);
                    }
                    assertTrue(System.nanoTime() < deadline, "stuck at " + completed + " of " + TOTAL + " after " + restarts + " restarts: "
                            + Files.readString(dir.resolve("backend.log")));
                }
            }
            assertEquals(TOTAL, done.cardinality(), "every write answered");
            flush();
            assertTrue(resubmissions() > 0, "some restart found requests in flight to resubmit (" + restarts + " restarts):\n"
                    + Files.readString(dir.resolve("backend.log")));
            System.out.println("backend restarts: " + restarts + ", of which resubmitted requests: " + resubmissions());
            fe.close();
            fe = null;
            backend.destroy();
            assertTrue(backend.waitFor(10, TimeUnit.SECONDS));
            try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
                byte[] b = new byte[4096];
                for (int block = 0; block < BLOCKS; block++) {
                    f.seek(block * 4096L);
                    f.readFully(b);
                    if (expected[block] >= 0) {
                        assertArrayEquals(pattern(block, expected[block]), b, "block " + block + " holds its last write");
                    }
                }
            }
        } finally {
            if (backend != null) {
                backend.destroyForcibly();
            }
            if (fe != null) {
                fe.close();
            }
            if (inflight != null) {
                org.jvirtio.api.linux.Libc.close(inflight.fd());
            }
            kick.close();
            call.close();
            mem.release();
        }
    }

    private int resubmissions() throws java.io.IOException {
        return (int) Files.readAllLines(dir.resolve("backend.log")).stream().filter(l -> l.contains("resubmitting")).count();
    }

    private void kill() throws Exception {
        backend.destroyForcibly(); // SIGKILL
        assertTrue(backend.waitFor(10, TimeUnit.SECONDS));
        fe.close();
        fe = null;
        restarts++;
    }

    static byte[] pattern(int block, long seq) {
        ByteBuffer b = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining()) {
            b.putLong(seq * 1_000_003L + block).putLong(~seq);
        }
        return b.array();
    }

    private void write(int slot, int block, long seq) {
        long hdr = HDRS + 16L * slot;
        long data = DATA + 4096L * slot;
        mem.writeU32(hdr, VirtioBlk.T_OUT);
        mem.writeU32(hdr + 4, 0);
        mem.writeU64(hdr + 8, 8L * block);
        mem.write(data, MemorySegment.ofArray(pattern(block, seq)));
        mem.writeU8(STATUS + slot, 0xee);
        assertTrue(driver.add(new long[] {hdr, data, STATUS + slot}, new int[] {16, 4096, 1}, 3, 2, ((long) slot << 32) | seq) >= 0);
    }

    private void flush() throws Exception {
        long hdr = HDRS + 16L * DEPTH;
        mem.writeU32(hdr, VirtioBlk.T_FLUSH);
        mem.writeU64(hdr + 8, 0);
        assertTrue(driver.add(new long[] {hdr, STATUS + DEPTH}, new int[] {16, 1}, 2, 1, -1L) >= 0);
        if (driver.publish()) {
            kick.signal();
        }
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (driver.pollUsed((h, t, l) -> assertEquals(-1L, t)) == 0) {
            assertTrue(System.nanoTime() < deadline, "no flush answer");
            call.await(20);
        }
        assertEquals(VirtioBlk.S_OK, mem.readU8(STATUS + DEPTH));
    }

    private void startBackend() throws Exception {
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                // writes through io_uring, not inline: they stay in flight long enough to be caught by the kill
                "-Djvirtio.inline_writes=off", "-cp", System.getProperty("java.class.path"), "org.jvirtio.runner.VhostUserRunner", "blk", "--socket", socket.toString(),
                "--image", image.toString());
        backend = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("backend.log").toFile())).start();
    }

    /** What QEMU does on (re)connecting: features, the inflight region it keeps, memory, the ring from the used index. */
    private void connect() throws Exception {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (true) {
            try {
                fe = VhostUserFrontend.connect(socket);
                fe.getFeatures();
                break;
            } catch (java.io.IOException e) {
                if (fe != null) {
                    fe.close();
                    fe = null;
                }
                assertTrue(backend.isAlive(), "the backend exited: " + Files.readString(dir.resolve("backend.log")));
                assertTrue(System.nanoTime() < deadline, "the backend never answered");
                Thread.sleep(20);
            }
        }
        long wanted = packed ? ~0L : ~VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
        long features = fe.negotiate(wanted, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES);
        assertEquals(packed, VirtioFeatures.has(features, VirtioFeatures.RING_PACKED));
        if (driver == null) {
            driver = QueueDriver.at(mem, RING, SIZE, features, 0, 0);
        }
        if (inflight == null) {
            inflight = fe.getInflightFd(1, SIZE);
            assertEquals(RingQueue.inflightRegionSize(packed, SIZE), inflight.mmapSize());
        }
        fe.setInflightFd(inflight);
        fe.setMemTable(mem);
        fe.setVringNum(0, SIZE);
        // QEMU's base after a lost backend: split, the used index (virtio_queue_restore_last_avail_idx);
        // packed, the state it gave at the ring's start (it has nothing to read back).
        fe.setVringBase(0, packed ? PackedQueue.FRESH | PackedQueue.FRESH << 16 : mem.readU16(driver.usedAddr() + 2));
        fe.setVringAddr(0, driver.descAddr(), driver.availAddr(), driver.usedAddr());
        fe.setVringCall(0, call);
        fe.setVringKick(0, kick);
        fe.setVringEnable(0, true);
        assertTrue(SplitRingLayout.place(RING, SIZE).end() < HDRS && org.jvirtio.ring.PackedRingLayout.place(RING, SIZE).end() < HDRS);
    }
}
