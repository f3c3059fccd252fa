package org.jvirtio.transport.vhostuser;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.host.QueueHost;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.transport.vhostuser.VhostUserCodec.MemRegion;
import org.jvirtio.testkit.OpenFds;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A hostile front-end, randomised: sessions of up to 24 messages drawn from every request the
 * protocol has, with fields near their limits (ring indices past the queue count, sizes that are
 * not powers of two, addresses outside memory, config ranges past the end, region tables with
 * too many or too few fds, NOFD with an fd, unknown codes and flags), real memfds and eventfds
 * attached, and kicks on what was sent as a kick fd. The rings hold real virtio-blk requests
 * (16 KiB reads and writes), so queues are busy when memory tables change, rings stop and the
 * device resets. Against a test device that echoes, and against the virtio-blk device on an image
 * with io_uring I/O threads, where guest memory must stay mapped while the kernel still writes to it.
 *
 * <p>Whatever arrives: the session ends within seconds of the front-end leaving (no wait on a
 * queue that never drains, no stuck event loop), the backend then serves a well-behaved
 * front-end, and once every session is over no fd or mapping of the backend's is left open.
 * Seeded; {@code -Djvirtio.fuzz.sessions=N} and {@code -Djvirtio.fuzz.seed=S} run longer.
 *
 * <p>The harness of {@code MessageFuzzTest} (this module's devices) and of device modules' own
 * hostile-front-end tests (virtio-blk-dataplane's, through this module's test jar).
 */
public final class HostileFrontendFuzz {
    public static final int QUEUES = 2;
    static final long MEM = 1 << 20;
    /** The disk the requests in the rings address (their sectors lie within it). */
    public static final long DISK = 4 << 20;
    static final int RING = 16;
    static final int CONFIG_SIZE = 16;

    private HostileFrontendFuzz() {
    }

    /** What a device tells the harness after the sessions: a line for the report, and whether it did enough to count. */
    public interface Served {
        /** The device's line for the report ("12 rings started"). */
        String describe();

        /** Fails when the device did less than {@code sessions} random sessions should make it do. */
        void check(int sessions);
    }

    /**
     * Runs the seeded random sessions against {@code device} (of {@link #QUEUES} queues) served on
     * a socket in {@code dir} by {@code host}, and checks what every device must survive; then
     * {@code served} checks what this device must have done.
     */
    public static void run(String kind, Path dir, VirtioDevice device, QueueHost host, Served served) throws Exception {
        int sessions = Integer.getInteger("jvirtio.fuzz.sessions", 300);
        // A soak (bench/soak.sh): as many sessions as fit, printing the backend's fds and mappings as it goes.
        long minutes = Long.getLong("jvirtio.fuzz.minutes", 0);
        long until = System.nanoTime() + minutes * 60_000_000_000L;
        if (minutes > 0) {
            sessions = Integer.MAX_VALUE;
        }
        long seed = Long.getLong("jvirtio.fuzz.seed", 0x76686f7374L);
        Path socket = dir.resolve("fuzz.sock");
        long features = FeatureNegotiation.offered(device);
        MemoryMapping mem = MemoryMapping.memfd("guest", MEM);
        GuestMemory guest = GuestMemory.of(GuestRegion.of(0, mem));
        Random rnd = new Random(seed);
        // Rings somewhere in the first 64 KiB; mostly zeros, a little garbage.
        for (int i = 0; i < 256; i++) {
            mem.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, rnd.nextInt(0x10000), (byte) rnd.nextInt(256));
        }
        ch.qos.logback.classic.Logger log = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("org.jvirtio");
        ch.qos.logback.classic.Level level = log.getLevel();
        try (VhostUserBackend backend = VhostUserBackend.start(socket, device, host)) {
            servesAWellBehavedFrontend(backend, socket, features); // lazily opened fds settle before counting
            long fdsBefore = OpenFds.count();
            long mapsBefore = mappings();
            log.setLevel(ch.qos.logback.classic.Level.ERROR); // thousands of refusals otherwise
            int closedByBackend = 0;
            int messages = 0;
            for (int s = 0; s < sessions; s++) {
                if (minutes > 0 && s % 2000 == 0) {
                    System.out.printf("soak %s: session %d, %d fds, %d guest mappings, %d mappings in all%n", kind, s, OpenFds.count(), mappings(),
                            allMappings());
                    if (System.nanoTime() - until > 0) {
                        sessions = s;
                        break;
                    }
                }
                String where = "seed " + seed + " session " + s;
                var disconnect = backend.nextDisconnect();
                List<EventFd> fds = new ArrayList<>();
                boolean hostile = rnd.nextBoolean();
                try (VhostUserFrontend fe = VhostUserFrontend.connect(socket)) {
                    // Most sessions begin as QEMU would (owner, features, memory, rings started), cut
                    // off at a random point, so that the random part finds running rings to upset.
                    List<Msg> setup = rnd.nextInt(4) == 0 ? List.of() : setup(rnd, mem, fds, features, requests(guest, features, rnd));
                    int cut = rnd.nextBoolean() ? setup.size() : rnd.nextInt(setup.size() + 1);
                    List<String> sent = new ArrayList<>();
                    for (Msg m : setup.subList(0, cut)) {
                        fe.sendRaw(m.bytes, m.fds);
                        sent.add(describe(m));
                        messages++;
                    }
                    int n = 1 + rnd.nextInt(hostile ? 24 : 6);
                    for (int i = 0; i < n; i++) {
                        if (!fds.isEmpty() && rnd.nextInt(6) == 0) {
                            fds.get(rnd.nextInt(fds.size())).signal(); // a kick (or call) on an fd sent earlier
                            sent.add("signal");
                            continue;
                        }
                        Msg m = message(rnd, mem, fds, hostile, features);
                        try {
                            fe.sendRaw(m.bytes, m.fds);
                            sent.add(describe(m));
                            messages++;
                        } catch (IOException e) {
                            break; // the backend closed the connection: its answer to something
                        }
                    }
                    // The backend reads everything sent, then the end of the stream; unread
                    // replies stay in our socket until it closes.
                    fe.shutdownOutput();
                    try {
                        disconnect.get(10, TimeUnit.SECONDS);
                    } catch (TimeoutException e) {
                        fail(where + ": the session did not end within 10 s of the front-end's end of stream; it sent " + sent
                                + "\n" + threadDump());
                    }
                }
                try {
                    String reason = disconnect.get(10, TimeUnit.SECONDS);
                    assertNotNull(reason, where);
                    if (reason.startsWith("protocol error")) {
                        closedByBackend++;
                    }
                } catch (TimeoutException e) {
                    fail(where + ": no disconnect reason");
                } finally {
                    for (EventFd e : fds) {
                        e.close();
                    }
                }
            }
            log.setLevel(level);
            servesAWellBehavedFrontend(backend, socket, features);
            System.out.printf("fuzz %s: %d sessions, %d messages, %d refused with a protocol error, %s%n", kind, sessions, messages,
                    closedByBackend, served.describe());
            served.check(sessions);
            // Both kinds of ending must be common, or the generator explores less than it claims.
            assertTrue(closedByBackend > sessions / 5 && closedByBackend < sessions * 9 / 10, "closed by the backend: " + closedByBackend);
            assertEquals(fdsBefore, OpenFds.count(), "fds left open by the backend");
            assertEquals(mapsBefore, mappings(), "mappings left by the backend");
        } finally {
            log.setLevel(level);
            guest.release();
            mem.release();
        }
    }

    private static String describe(Msg m) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(m.bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        if (m.bytes.length < 12) {
            return "raw" + m.bytes.length;
        }
        int code = b.getInt(0);
        VhostUserRequest r = VhostUserRequest.of(code);
        StringBuilder sb = new StringBuilder(r != null ? r.name() : "code " + code);
        sb.append(" flags 0x").append(Integer.toHexString(b.getInt(4))).append(" size ").append(b.getInt(8));
        for (int i = 12; i + 8 <= Math.min(m.bytes.length, 36); i += 8) {
            sb.append(' ').append(Long.toHexString(b.getLong(i)));
        }
        return sb.append(" fds ").append(m.fds.length).toString();
    }

    private static String threadDump() {
        StringBuilder sb = new StringBuilder();
        Thread.getAllStackTraces().forEach((t, st) -> {
            sb.append('"').append(t.getName()).append("\" ").append(t.getState()).append('\n');
            for (StackTraceElement e : st) {
                sb.append("    at ").append(e).append('\n');
            }
        });
        return sb.toString();
    }

    private static long allMappings() throws IOException {
        try (var lines = Files.lines(Path.of("/proc/self/maps"))) {
            return lines.count();
        }
    }

    private static void servesAWellBehavedFrontend(VhostUserBackend backend, Path socket, long features) throws Exception {
        var disconnect = backend.nextDisconnect();
        try (VhostUserFrontend fe = VhostUserFrontend.connect(socket)) {
            fe.negotiate(features, 1L << PROTOCOL_F_REPLY_ACK);
            assertEquals(QUEUES, fe.getQueueNum());
        }
        assertEquals("front-end disconnected", disconnect.get(10, TimeUnit.SECONDS));
    }

    record Msg(byte[] bytes, int[] fds) {
    }

    /**
     * One message. In a careful session ({@code hostile} false) every field is one a correct
     * front-end could send (in any order, so still possibly refused); in a hostile one, about
     * one field in six is off.
     */
    private static Msg message(Random rnd, MemoryMapping mem, List<EventFd> fds, boolean hostile, long features) throws IOException {
        Bad bad = () -> hostile && rnd.nextInt(6) == 0;
        int flags = VERSION | (rnd.nextInt(3) == 0 ? FLAG_NEED_REPLY : 0);
        if (bad.now() && rnd.nextInt(4) == 0) {
            flags |= rnd.nextInt(0x100) & ~VERSION_MASK; // unknown bits (and now and then REPLY)
        }
        int[] noFds = new int[0];
        long base = mem.segment().address();
        int ring = bad.now() ? rnd.nextInt(300) : rnd.nextInt(QUEUES);
        return switch (rnd.nextInt(hostile ? 23 : 21)) {
            case 0 -> msg(VhostUserRequest.GET_FEATURES, flags, new byte[0], noFds);
            case 1 -> msg(VhostUserRequest.SET_FEATURES, flags, u64(bad.now() ? rnd.nextLong()
                    : (features | F_PROTOCOL_FEATURES) & rnd.nextLong() | VERSION_1), noFds);
            case 2 -> msg(VhostUserRequest.SET_OWNER, flags, new byte[0], noFds);
            case 3 -> msg(VhostUserRequest.GET_PROTOCOL_FEATURES, flags, new byte[0], noFds);
            case 4 -> msg(VhostUserRequest.SET_PROTOCOL_FEATURES, flags,
                    u64(bad.now() ? rnd.nextLong() : BACKEND_PROTOCOL_FEATURES & rnd.nextLong()), noFds);
            case 5 -> msg(VhostUserRequest.GET_QUEUE_NUM, flags, new byte[0], noFds);
            case 6 -> {
                int k = bad.now() ? rnd.nextInt(10) : 1 + rnd.nextInt(2);
                List<MemRegion> regions = new ArrayList<>();
                for (int i = 0; i < k; i++) {
                    regions.add(region(rnd, base, i, bad));
                }
                int[] f = new int[bad.now() ? rnd.nextInt(4) : k];
                java.util.Arrays.fill(f, mem.fd());
                yield msg(VhostUserRequest.SET_MEM_TABLE, flags, VhostUserCodec.encodeMemTable(regions), f);
            }
            case 7 -> msg(VhostUserRequest.SET_VRING_NUM, flags,
                    state(ring, bad.now() ? pick(rnd, 0, 3, 1023, 65535, rnd.nextInt()) : pick(rnd, 1, 2, 16, 64, 256, 1024, 32768)), noFds);
            case 8 -> msg(VhostUserRequest.SET_VRING_ADDR, flags, VhostUserCodec.encodeVringAddr(ring,
                    bad.now() ? rnd.nextInt() : 0, addr(rnd, base, bad), addr(rnd, base, bad), addr(rnd, base, bad), 0), noFds);
            case 9 -> msg(VhostUserRequest.SET_VRING_BASE, flags, state(ring, bad.now() ? pick(rnd, 65536, rnd.nextInt()) : pick(rnd, 0, 0, 1, 255, 65535)), noFds);
            case 10 -> msg(VhostUserRequest.GET_VRING_BASE, flags, state(ring, 0), noFds);
            case 11, 12, 13 -> {
                VhostUserRequest r = new VhostUserRequest[] {VhostUserRequest.SET_VRING_KICK, VhostUserRequest.SET_VRING_CALL,
                        VhostUserRequest.SET_VRING_ERR}[rnd.nextInt(3)];
                boolean nofd = rnd.nextInt(5) == 0;
                long v = ring | (nofd ? VRING_NOFD_MASK : 0);
                if (bad.now() && rnd.nextInt(4) == 0) {
                    v = rnd.nextLong();
                }
                int[] f = noFds;
                if (!nofd || bad.now()) {
                    EventFd e = EventFd.create(true);
                    fds.add(e);
                    f = bad.now() ? new int[] {e.fd(), e.fd()} : new int[] {e.fd()};
                }
                yield msg(r, flags, u64(v), f);
            }
            case 14 -> msg(VhostUserRequest.SET_VRING_ENABLE, flags, state(ring, bad.now() ? pick(rnd, 2, -1) : rnd.nextInt(2)), noFds);
            case 15, 16 -> {
                int offset = bad.now() ? pick(rnd, 255, 256, 300, rnd.nextInt()) : rnd.nextInt(CONFIG_SIZE);
                int size = bad.now() ? pick(rnd, 257, rnd.nextInt(300), CONFIG_SIZE) : rnd.nextInt(Math.max(1, CONFIG_SIZE - offset + 1));
                byte[] data = new byte[Math.max(0, Math.min(size, 300))];
                rnd.nextBytes(data);
                byte[] p = ByteBuffer.allocate(12 + data.length).order(ByteOrder.LITTLE_ENDIAN)
                        .putInt(offset).putInt(size).putInt(bad.now() ? rnd.nextInt() : 0).put(data).array();
                yield msg(rnd.nextBoolean() ? VhostUserRequest.GET_CONFIG : VhostUserRequest.SET_CONFIG, flags, p, noFds);
            }
            case 17 -> msg(VhostUserRequest.ADD_MEM_REG, flags, VhostUserCodec.encodeMemRegion(region(rnd, base, rnd.nextInt(4), bad)),
                    bad.now() ? noFds : new int[] {mem.fd()});
            case 18 -> msg(VhostUserRequest.REM_MEM_REG, flags, VhostUserCodec.encodeMemRegion(region(rnd, base, rnd.nextInt(4), bad)),
                    rnd.nextInt(4) == 0 ? new int[] {mem.fd()} : noFds);
            case 19 -> msg(VhostUserRequest.SET_STATUS, flags, u64(bad.now() ? pick(rnd, 0x100, -1) : pick(rnd, 0, 1, 3, 11, 15, 0x40, 0x80)), noFds);
            case 20 -> msg(new VhostUserRequest[] {VhostUserRequest.GET_STATUS, VhostUserRequest.RESET_DEVICE,
                    VhostUserRequest.GET_MAX_MEM_SLOTS, VhostUserRequest.RESET_OWNER}[rnd.nextInt(4)], flags, new byte[0], noFds);
            case 21 -> {
                // SET_BACKEND_REQ_FD with an eventfd in place of a socket: writes to it must fail cleanly
                EventFd e = EventFd.create(true);
                fds.add(e);
                yield msg(VhostUserRequest.SET_BACKEND_REQ_FD, flags, new byte[0], new int[] {e.fd()});
            }
            default -> {
                // anything: any code, any payload, a few fds
                byte[] p = new byte[rnd.nextInt(8) == 0 ? rnd.nextInt(200) : rnd.nextInt(48)];
                rnd.nextBytes(p);
                int[] f = new int[rnd.nextInt(3)];
                for (int i = 0; i < f.length; i++) {
                    EventFd e = EventFd.create(true);
                    fds.add(e);
                    f[i] = e.fd();
                }
                yield new Msg(VhostUserMessage.encode(rnd.nextInt(60), flags, p), f);
            }
        };
    }

    /** A correct start: owner, features, protocol features, memory, then every ring set up, kicked and enabled. */
    /**
     * Lays out, per queue, a ring of {@link #RING} entries at 0x4000 * q holding twelve virtio-blk
     * requests (16 KiB reads and writes, headers at 0x20000, status bytes at 0x30000, data from
     * 0x40000) and returns where each ring is: {desc, avail, used} guest addresses.
     */
    private static long[][] requests(GuestMemory guest, long features, Random rnd) {
        long[][] rings = new long[QUEUES][];
        for (int q = 0; q < QUEUES; q++) {
            SplitQueueDriver d = SplitQueueDriver.at(guest, 0x4000L * q, RING, features, 0, 0);
            for (int i = 0; i < 12; i++) {
                int k = q * RING + i;
                long hdr = 0x20000 + 16L * k;
                guest.writeU32(hdr, rnd.nextBoolean() ? 0 : 1); // IN or OUT
                guest.writeU32(hdr + 4, 0);
                guest.writeU64(hdr + 8, rnd.nextInt((int) (DISK / 512) - 32));
                boolean out = guest.readU32(hdr) == 1;
                d.add(new long[] {hdr, 0x40000 + 0x4000L * k, 0x30000 + k}, new int[] {16, 0x4000, 1}, 3, out ? 2 : 1, k);
            }
            d.publish();
            rings[q] = new long[] {d.descAddr(), d.availAddr(), d.usedAddr()};
        }
        return rings;
    }

    private static List<Msg> setup(Random rnd, MemoryMapping mem, List<EventFd> fds, long features, long[][] rings) throws IOException {
        long base = mem.segment().address();
        int[] none = new int[0];
        int flags = VERSION;
        List<Msg> m = new ArrayList<>();
        m.add(msg(VhostUserRequest.SET_OWNER, flags, new byte[0], none));
        m.add(msg(VhostUserRequest.GET_FEATURES, flags, new byte[0], none));
        m.add(msg(VhostUserRequest.SET_FEATURES, flags, u64(features | F_PROTOCOL_FEATURES), none));
        m.add(msg(VhostUserRequest.SET_PROTOCOL_FEATURES, flags, u64(BACKEND_PROTOCOL_FEATURES), none));
        m.add(msg(VhostUserRequest.SET_MEM_TABLE, flags, VhostUserCodec.encodeMemTable(List.of(new MemRegion(0, MEM, base, 0))),
                new int[] {mem.fd()}));
        for (int q = 0; q < QUEUES; q++) {
            m.add(msg(VhostUserRequest.SET_VRING_NUM, flags, state(q, RING), none));
            m.add(msg(VhostUserRequest.SET_VRING_ADDR, flags,
                    VhostUserCodec.encodeVringAddr(q, 0, base + rings[q][0], base + rings[q][2], base + rings[q][1], 0), none));
            m.add(msg(VhostUserRequest.SET_VRING_BASE, flags, state(q, 0), none));
            EventFd call = EventFd.create(true);
            EventFd kick = EventFd.create(true);
            fds.add(call);
            fds.add(kick);
            m.add(msg(VhostUserRequest.SET_VRING_CALL, flags, u64(q), new int[] {call.fd()}));
            m.add(msg(VhostUserRequest.SET_VRING_KICK, flags, u64(q), new int[] {kick.fd()}));
            m.add(msg(VhostUserRequest.SET_VRING_ENABLE, flags, state(q, 1), none));
        }
        return m;
    }

    /** Whether this field is to be wrong. */
    private interface Bad {
        boolean now();
    }

    private static final long VERSION_1 = 1L << 32;

    private static MemRegion region(Random rnd, long base, int i, Bad bad) {
        if (bad.now()) {
            return new MemRegion(pickL(rnd, (long) i << 20, rnd.nextLong() & ~0xfffL, -4096L), pickL(rnd, 0, MEM + 0x1000, rnd.nextLong()),
                    pickL(rnd, base, rnd.nextLong()), pickL(rnd, 0x1000, MEM, rnd.nextLong()));
        }
        // the whole memfd, or its second half, at one of two guest addresses
        boolean half = rnd.nextBoolean();
        return new MemRegion(rnd.nextBoolean() ? 0 : 0x10000000L, half ? MEM / 2 : MEM, base + (half ? MEM / 2 : 0), half ? MEM / 2 : 0);
    }

    /** A ring address (front-end user address): inside the first 64 KiB mostly. */
    private static long addr(Random rnd, long base, Bad bad) {
        if (bad.now()) {
            return pickL(rnd, base + 1, base + MEM - 16, base + MEM, rnd.nextLong(), 0);
        }
        return base + 0x1000L * rnd.nextInt(8);
    }

    private static Msg msg(VhostUserRequest r, int flags, byte[] payload, int[] fds) {
        return new Msg(VhostUserMessage.encode(r.code(), flags, payload), fds);
    }

    private static byte[] u64(long v) {
        return VhostUserMessage.u64(v);
    }

    private static byte[] state(int index, int num) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(index).putInt(num).array();
    }

    private static int pick(Random rnd, int... from) {
        return from[rnd.nextInt(from.length)];
    }

    private static long pickL(Random rnd, long... from) {
        return from[rnd.nextInt(from.length)];
    }

    private static long mappings() throws Exception {
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.contains("memfd:guest")).count();
    }
}
