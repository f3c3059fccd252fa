package org.jvirtio.examples.blk;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.jvirtio.examples.TestGuest;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;
import org.jvirtio.runner.VhostUserRunner;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A real Linux guest (Debian's 6.1 kernel, busybox initramfs) in QEMU (TCG) uses the jvirtio
 * vhost-user-blk backend as its disk: writes patterns with dd (direct and buffered), drops
 * caches, reads back and compares checksums, discards a range, creates, mounts and checks a
 * vfat file system, then ext4 with online discard and fstrim; turns the write cache off
 * (SET_CONFIG) and on again; reboots (QEMU resets the device on the same connection; firmware
 * and kernel negotiate again) and checks that the data survived. The test asserts on what the
 * guest prints. With 1 queue (QEMU's defaults), 1 queue without indirect descriptors and
 * EVENT_IDX, and 2 queues of 1024 entries (-smp 2).
 */
class QemuGuestTest {
    private static final Path QEMU = org.jvirtio.examples.TestGuest.QEMU;
    private static Path kernel;
    private static Path initrd;

    @TempDir
    Path dir;

    @BeforeAll
    static void prepareGuest() throws Exception {
        org.jvirtio.examples.TestGuest g = org.jvirtio.examples.TestGuest.prepare();
        kernel = g.kernel();
        initrd = g.initrd();
    }

    /**
     * Boots the guest with {@code args} and returns what it printed. A boot that never reaches the
     * guest's init (nothing from us has run: firmware or kernel under TCG stalled, seen about once
     * in thirty boots here) is tried once more, saying so; a hang after init started is the
     * device's and fails the test.
     */
    private String runGuest(int seconds, String... args) throws Exception {
        for (int attempt = 1; ; attempt++) {
            Path log = dir.resolve("qemu-" + attempt + ".log");
            java.util.List<String> cmd = new java.util.ArrayList<>(List.of(QEMU.toString(),
                    "-machine", "q35,accel=tcg,memory-backend=mem", "-m", "256M",
                    "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
                    "-nographic", "-kernel", kernel.toString(), "-initrd", initrd.toString()));
            cmd.addAll(List.of(args));
            Process qemu = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (qemu.waitFor(seconds, TimeUnit.SECONDS)) {
                return Files.readString(log);
            }
            qemu.destroyForcibly();
            qemu.waitFor(10, TimeUnit.SECONDS);
            String out = Files.readString(log);
            if (attempt == 1 && !out.contains("GUEST: init")) {
                System.out.println("QemuGuestTest: the guest kernel did not reach init within " + seconds + " s; booting once more. It printed: " + out);
                continue;
            }
            fail("guest did not finish within " + seconds + " s: " + out);
        }
    }

    @ParameterizedTest(name = "{0} queue(s) {1}")
    @CsvSource({"1, ''", "1, ',indirect_desc=off,event_idx=off'", "2, ',queue-size=1024'", "1, ',packed=on'",
        "2, ',packed=on,queue-size=1024,indirect_desc=off'"})
    void guestUsesTheDisk(int queues, String deviceOptions) throws Exception {
        useTheDisk(List.of("--image", image64M().toString()), queues, deviceOptions);
    }

    /** Issue 27: the same guest workloads on an RBD image of a real Ceph cluster ({@code blk --rbd}). */
    @ParameterizedTest(name = "rbd {0} queue(s) {1}")
    @CsvSource({"1, ''", "2, ',packed=on'"})
    void guestUsesAnRbdDisk(int queues, String deviceOptions) throws Exception {
        useTheDisk(rbdDisk("guest" + queues, "64M"), queues, deviceOptions);
    }

    /** A 64 MiB raw image file in the test's directory. */
    private Path image64M() throws java.io.IOException {
        Path img = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(64 << 20);
        }
        return img;
    }

    private static org.jvirtio.testkit.CephCluster ceph;
    @TempDir
    static Path cephDir;

    /** The flags of a new RBD image on this class's Ceph cluster (started on first use; the test is skipped without Ceph). */
    private static List<String> rbdDisk(String name, String size) throws Exception {
        String missing = org.jvirtio.testkit.CephCluster.missing();
        org.junit.jupiter.api.Assumptions.assumeTrue(missing == null, missing);
        if (ceph == null) {
            ceph = org.jvirtio.testkit.CephCluster.start(cephDir.resolve("ceph"));
        }
        ceph.createImage("rbd/" + name, size);
        return List.of("--rbd", "rbd/" + name, "--ceph-conf", ceph.conf().toString());
    }

    @org.junit.jupiter.api.AfterAll
    static void stopCeph() {
        if (ceph != null) {
            ceph.close();
            ceph = null;
        }
    }

    private void useTheDisk(List<String> disk, int queues, String deviceOptions) throws Exception {
        Path sock = dir.resolve("vublk.sock");
        List<String> args = new java.util.ArrayList<>(List.of("--socket", sock.toString()));
        args.addAll(disk);
        args.addAll(List.of("--queues", Integer.toString(queues), "--iothreads", Integer.toString(queues), "--serial", "jvirtio-guest"));
        try (var backend = VhostUserBlkCommand.start(args.toArray(String[]::new))) {
            String out = runGuest(150, "-smp", "2", "-append", "console=ttyS0 quiet panic=-1",
                    "-chardev", "socket,id=vublk0,path=" + sock,
                    // QEMU's defaults; no indirect descriptors and no EVENT_IDX (chains must fit the
                    // 128-entry ring: seg_max; notifications by flags); the largest rings QEMU allows
                    "-device", "vhost-user-blk-pci,chardev=vublk0,num-queues=" + queues + deviceOptions);
            assertTrue(out.contains("GUEST: disk /dev/vda sectors 131072 queues " + queues), out);
            assertTrue(out.contains("GUEST: serial jvirtio-guest"), out);
            assertTrue(out.contains("GUEST: packed " + (deviceOptions.contains("packed=on") ? 1 : 0)), out);
            assertTrue(out.contains("GUEST: RW OK"), out);
            assertTrue(out.contains("GUEST: PARALLEL OK"), out);
            assertTrue(out.contains("GUEST: DISCARD OK"), out);
            assertTrue(out.contains("GUEST: DISCARDED RANGE READS ZERO"), out);
            assertTrue(out.contains("GUEST: FS OK"), out);
            assertTrue(out.contains("GUEST: FSTRIM OK"), out);
            assertTrue(out.contains("GUEST: EXT4 OK"), out);
            assertTrue(out.contains("GUEST: WRITETHROUGH OK"), out);
            assertTrue(out.contains("GUEST: REBOOTING"), out);
            assertTrue(out.contains("GUEST: SECOND BOOT queues " + queues), out);
            assertTrue(out.contains("GUEST: DATA SURVIVED REBOOT"), out);
            assertTrue(out.contains("GUEST: DONE"), out);
            assertFalse(out.contains("FAILED") || out.contains("MISMATCH") || out.contains("UNEXPECTED"), out);
            long requests = 0;
            for (int q = 0; q < queues; q++) {
                requests += backend.device().stats(q).requests();
            }
            assertTrue(requests > 100, "requests served: " + requests);
        }
    }

    /**
     * Issue 12: the backend ({@code bin/vhost-user blk}, a separate process, 2 queues on 2 I/O
     * threads, writes through io_uring) is killed with SIGKILL three times while the guest writes
     * with direct I/O from four writers at once, and started again on the same socket; QEMU
     * ({@code reconnect=1}) reconnects and hands the new backend its inflight region. The guest's
     * writes all complete (no I/O error, no hung task), and after a flush every region reads back
     * as the last pattern written to it.
     */
    @ParameterizedTest(name = "packed={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void aBackendKilledUnderTheGuestsWritesLosesNothing(boolean packed) throws Exception {
        killUnderTheGuestsWrites(List.of("--image", image64M().toString()), packed, new int[] {2, 4, 6});
    }

    /**
     * Issue 27: the same on an RBD image, killed once. The killed backend's exclusive lock on the
     * image stays with its dead client, whose watch the OSD keeps for osd_client_watch_timeout
     * (30 s); the new backend finds the killed one's record in the lock directory (the default
     * one here), sees its process gone and breaks the lock at once, so the guest's writes go on
     * without waiting for the watch, and nothing is lost.
     */
    @Test
    void anRbdBackendKilledUnderTheGuestsWritesLosesNothing() throws Exception {
        killUnderTheGuestsWrites(rbdDisk("restart", "64M"), false, new int[] {2});
        String log = Files.readString(dir.resolve("backend.log"));
        assertTrue(log.contains("took the exclusive lock over from client"), "the restarted backend did not take the lock over: " + log);
    }

    /**
     * Issue 27: the OSD frozen (SIGSTOP) for 5 s in the middle of the guest's writes and then
     * continued: the guest sees a delay (the op timeout, 30 s, is not reached), no error, no hung
     * task, the backend stays up, and every region reads back as its last pattern.
     */
    @Test
    void anOsdFrozenUnderTheGuestsWritesDelaysThemAndLosesNothing() throws Exception {
        List<String> disk = rbdDisk("frozen", "64M");
        faultUnderTheGuestsWrites(disk, false, new int[] {2}, () -> {
            ceph.stopOsd();
            try {
                Thread.sleep(5000);
            } finally {
                ceph.continueOsd();
            }
            return null;
        });
    }

    private void killUnderTheGuestsWrites(List<String> disk, boolean packed, int[] killRounds) throws Exception {
        faultUnderTheGuestsWrites(disk, packed, killRounds, null);
    }

    /** The guest's restart workload; at each of {@code rounds}, the backend is killed and restarted, or {@code fault} runs instead. */
    private void faultUnderTheGuestsWrites(List<String> disk, boolean packed, int[] killRounds, java.util.concurrent.Callable<Void> fault)
            throws Exception {
        Path sock = dir.resolve("vublk.sock");
        Path backendLog = dir.resolve("backend.log");
        List<String> backendCmd = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED",
                "-Djvirtio.inline_writes=off", "-cp", System.getProperty("java.class.path"), "org.jvirtio.runner.VhostUserRunner", "blk",
                "--socket", sock.toString(), "--queues", "2", "--iothreads", "2"));
        backendCmd.addAll(disk);
        Process backend = TestGuest.startBackend(backendCmd, backendLog, 1);
        Path log = dir.resolve("qemu.log");
        Process qemu = new ProcessBuilder(QEMU.toString(), "-machine", "q35,accel=tcg,memory-backend=mem", "-m", "256M",
                "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-nographic", "-kernel", kernel.toString(), "-initrd", initrd.toString(),
                "-smp", "2", "-append", "console=ttyS0 quiet panic=-1 jvirtio=restart",
                "-chardev", "socket,id=vublk0,path=" + sock + ",reconnect=1",
                "-device", "vhost-user-blk-pci,chardev=vublk0,num-queues=2" + (packed ? ",packed=on" : ""))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        int kills = 0;
        try {
            long deadline = System.nanoTime() + 300_000_000_000L;
            java.util.Set<Integer> killedAt = new java.util.HashSet<>();
            while (qemu.isAlive()) {
                assertTrue(System.nanoTime() < deadline, "the guest did not finish within 300 s: " + Files.readString(log));
                String out = Files.readString(log);
                for (int round : killRounds) {
                    if (!killedAt.contains(round) && out.contains("GUEST: ROUND " + round + " WRITING")) {
                        killedAt.add(round);
                        Thread.sleep(150); // into the round's writes
                        kills++;
                        if (fault != null) {
                            fault.call();
                            assertTrue(backend.isAlive(), "the backend died under the fault: " + Files.readString(backendLog));
                            continue;
                        }
                        backend.destroyForcibly(); // SIGKILL
                        assertTrue(backend.waitFor(10, TimeUnit.SECONDS));
                        backend = TestGuest.startBackend(backendCmd, backendLog, 1);
                    }
                }
                Thread.sleep(20);
            }
            String out = Files.readString(log);
            assertEquals(killRounds.length, kills, out);
            // one boot: a guest that oopsed reboots (panic=-1) and would run all its rounds anew
            assertEquals(out.indexOf("GUEST: init"), out.lastIndexOf("GUEST: init"), "the guest rebooted: " + out);
            assertFalse(out.contains("Call Trace") || out.contains("Kernel panic"), "the guest crashed: " + out);
            assertTrue(out.contains("GUEST: disk /dev/vda queues 2 packed " + (packed ? 1 : 0)), out);
            assertTrue(out.contains("GUEST: ROUND 6 WRITTEN"), out);
            assertTrue(out.contains("GUEST: RESTART DATA OK"), out);
            assertTrue(out.contains("GUEST: DONE"), out);
            assertFalse(out.contains("WRITE FAILED") || out.contains("MISMATCH") || out.contains("KERNEL SAYS"), out);
            System.out.println("QemuGuestTest: " + (fault != null ? "fault injected " : "backend killed ") + kills
                    + " times under the guest's writes; backend said: "
                    + Files.readAllLines(backendLog).stream().filter(l -> l.contains("resubmitting")).toList());
        } finally {
            qemu.destroyForcibly();
            backend.destroyForcibly();
        }
    }

    /**
     * Issue 12: live migration between two QEMUs on this machine, each attached to its own
     * jvirtio backend on the same image, dirty logging as the backend offers it by default. The
     * guest writes with direct I/O from four writers in rounds and reads every round back; during
     * round 2 the source migrates to the destination (started with -incoming and -S), which needs
     * the backend's dirty logging (QEMU refuses to migrate a vhost device without
     * VHOST_F_LOG_ALL). Before the destination runs, both QEMUs dump guest memory (pmemsave): the
     * two must be equal page for page, which is what dirty logging is for. Then the destination
     * runs, the guest finishes its rounds there without a crash or a reboot, and every region
     * reads back as the last pattern written to it.
     *
     * <p>QEMU 7.2's TCG itself loses a few CPU-written pages in some migrations, more often when
     * the host's CPUs are contended (the same pages with qemu-storage-daemon as both backends,
     * multi- and single-threaded TCG; kernel data in the samples examined, not pages a device
     * wrote; bench/migration-dumps.sh reproduces it by hand). A migration whose dumps differ is reported and tried again, up to three
     * times, and when all three lose pages the test is aborted (reported as skipped, not
     * passed); {@link MigrationShadowTest} checks the device's side of it exactly, without TCG.
     */
    @ParameterizedTest(name = "packed={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void liveMigrationBetweenTwoQemusOnTwoBackends(boolean packed) throws Exception {
        migrationDeviceOptions = packed ? ",packed=on" : "";
        migrate(List.of("--image", image64M().toString()));
    }

    /**
     * Issue 27: migration between hosts as clouds do it, with shared storage: two backends open
     * the same RBD image; the source's backend holds its exclusive lock while the guest writes
     * there, and the destination's backend takes it over (librbd's cooperative lock transition)
     * with its first write after the switch.
     */
    @Test
    void liveMigrationBetweenTwoQemusOnTwoBackendsOnOneRbdImage() throws Exception {
        migrationDeviceOptions = "";
        migrate(rbdDisk("migrate", "64M"));
    }

    private void migrate(List<String> disk) throws Exception {
        Path sockA = dir.resolve("a.sock");
        Path sockB = dir.resolve("b.sock");
        // Inside the suite's 180 s per test, so that a guest that hangs fails with its logs.
        long deadline = System.nanoTime() + 170_000_000_000L;
        StringBuilder lost = new StringBuilder();
        List<String> a = new java.util.ArrayList<>(List.of("--socket", sockA.toString(), "--queues", "2", "--iothreads", "2"));
        a.addAll(disk);
        List<String> b = new java.util.ArrayList<>(List.of("--socket", sockB.toString(), "--queues", "2", "--iothreads", "2"));
        b.addAll(disk);
        try (var backendA = VhostUserBlkCommand.start(a.toArray(String[]::new));
             var backendB = VhostUserBlkCommand.start(b.toArray(String[]::new))) {
            assertTrue(backendA.device().deviceId() == 2 && backendB.device().deviceId() == 2);
            for (int attempt = 1; attempt <= 3; attempt++) {
                String why = migrateOnce(attempt, sockA, sockB, deadline);
                if (why == null) {
                    long served = backendB.device().stats(0).requests() + backendB.device().stats(1).requests();
                    assertTrue(served > 0, "the destination's backend served the guest after the migration");
                    System.out.println("QemuGuestTest: migrated during round 2 (attempt " + attempt + "); destination backend served "
                            + served + " requests" + lost);
                    return;
                }
                lost.append("; attempt ").append(attempt).append(": ").append(why);
                System.out.println("QemuGuestTest: migration attempt " + attempt + ": " + why);
            }
        }
        // Not a pass: QEMU itself did not deliver an intact migration to check the device with.
        // MigrationShadowTest checks the device's side exactly; a backend fault shows there.
        org.junit.jupiter.api.Assumptions.abort("QEMU lost CPU-written guest memory in three migrations (TCG under contention, not the device)"
                + lost);
    }

    /**
     * One migration; null when it passed, or why QEMU lost memory in it (the dumps differ). Fails
     * the test for anything else.
     */
    private String migrateOnce(int attempt, Path sockA, Path sockB, long deadline) throws Exception {
        Path mig = dir.resolve("mig-" + attempt + ".sock");
        Path monA = dir.resolve("mon-a-" + attempt + ".sock");
        Path monB = dir.resolve("mon-b-" + attempt + ".sock");
        Path logA = dir.resolve("qemu-a-" + attempt + ".log");
        Path logB = dir.resolve("qemu-b-" + attempt + ".log");
        Path memA = dir.resolve("mem-a.bin");
        Path memB = dir.resolve("mem-b.bin");
        Process src = qemu(sockA, logA, "-monitor", "unix:" + monA + ",server=on,wait=off");
        Process dst = qemu(sockB, logB, "-monitor", "unix:" + monB + ",server=on,wait=off", "-incoming", "unix:" + mig, "-S");
        boolean passed = false;
        try {
            String packedLine = "GUEST: disk /dev/vda queues 2 packed " + (migrationDeviceOptions.contains("packed=on") ? 1 : 0);
            while (!Files.readString(logA).contains("GUEST: ROUND 2 WRITING")) {
                assertTrue(src.isAlive(), "the source QEMU exited: " + Files.readString(logA));
                assertTrue(System.nanoTime() < deadline, "the guest never reached round 2: " + Files.readString(logA));
                Thread.sleep(20);
            }
            assertTrue(Files.readString(logA).contains(packedLine), packedLine + ": " + Files.readString(logA));
            try (var chA = TestGuest.monitor(monA); var chB = TestGuest.monitor(monB)) {
                TestGuest.migrate(chA, chB, mig, deadline);
                String differ = compareMemory(chA, chB, memA, memB);
                if (differ != null) {
                    return differ;
                }
                TestGuest.hmp(chA, "quit");
                TestGuest.hmp(chB, "cont");
            }
            assertTrue(dst.waitFor(Math.max(1, (deadline - System.nanoTime()) / 1_000_000_000L), TimeUnit.SECONDS),
                    "the guest did not finish on the destination: " + Files.readString(logB) + "\nsource: " + Files.readString(logA));
            String out = Files.readString(logB);
            // The destination goes on where the source stopped: a guest that booted there
            // again (panic=-1 reboots after an oops) would run all six rounds anew and pass.
            assertFalse(out.contains("GUEST: init") || out.contains("Call Trace") || out.contains("Kernel panic"),
                    "the guest crashed on the destination: " + out + "\nsource: " + Files.readString(logA));
            assertTrue(out.contains("GUEST: ROUND 6 WRITTEN"), "destination: " + out + "\nsource: " + Files.readString(logA));
            assertTrue(out.contains("GUEST: RESTART DATA OK"), out);
            assertTrue(out.contains("GUEST: DONE"), out);
            assertFalse(out.contains("WRITE FAILED") || out.contains("MISMATCH") || out.contains("KERNEL SAYS"), out);
            passed = true;
            return null;
        } finally {
            src.destroyForcibly();
            dst.destroyForcibly();
            src.waitFor(10, TimeUnit.SECONDS);
            dst.waitFor(10, TimeUnit.SECONDS);
            Files.deleteIfExists(memA);
            Files.deleteIfExists(memB);
            String keep = System.getProperty("jvirtio.test.keep");
            if (!passed && keep != null) {
                Path to = Files.createDirectories(Path.of(keep).resolve("migration-" + System.currentTimeMillis()));
                for (Path l : List.of(logA, logB)) {
                    if (Files.exists(l)) {
                        Files.copy(l, to.resolve(l.getFileName()));
                    }
                }
                System.out.println("QemuGuestTest: the guest logs are in " + to);
            }
        }
    }

    /** Both QEMUs paused: dumps guest memory of each and names the pages that differ, or null when none does. */
    private static String compareMemory(java.nio.channels.SocketChannel chA, java.nio.channels.SocketChannel chB, Path memA, Path memB)
            throws Exception {
        long size = 256L << 20;
        for (var e : List.of(java.util.Map.entry(chA, memA), java.util.Map.entry(chB, memB))) {
            String r = TestGuest.hmp(e.getKey(), "pmemsave 0 " + size + " \"" + e.getValue() + "\"");
            long until = System.nanoTime() + 30_000_000_000L;
            while (!Files.exists(e.getValue()) || Files.size(e.getValue()) < size) {
                assertTrue(System.nanoTime() < until, "pmemsave did not write " + e.getValue() + ": " + r);
                Thread.sleep(50);
            }
            // the monitor runs one command at a time: an answer to the next means the dump is closed
            while (!TestGuest.hmp(e.getKey(), "info status").contains("VM status")) {
                assertTrue(System.nanoTime() < until, "the monitor did not answer after pmemsave");
            }
        }
        try (var fa = java.nio.channels.FileChannel.open(memA); var fb = java.nio.channels.FileChannel.open(memB);
             var arena = java.lang.foreign.Arena.ofConfined()) {
            var ma = fa.map(java.nio.channels.FileChannel.MapMode.READ_ONLY, 0, size, arena);
            var mb = fb.map(java.nio.channels.FileChannel.MapMode.READ_ONLY, 0, size, arena);
            List<String> pages = new java.util.ArrayList<>();
            int count = 0;
            for (long p = 0; p < size; p += 4096) {
                if (ma.asSlice(p, 4096).mismatch(mb.asSlice(p, 4096)) >= 0) {
                    if (count++ < 8) {
                        pages.add("0x" + Long.toHexString(p));
                    }
                }
            }
            return count == 0 ? null : count + " guest pages differ between source and destination after the migration " + pages;
        }
    }

    /** The migration test's extra -device options (packed rings or not). */
    private String migrationDeviceOptions = "";

    private Process qemu(Path sock, Path log, String... extra) throws java.io.IOException {
        java.util.List<String> cmd = new java.util.ArrayList<>(List.of(QEMU.toString(), "-machine", "q35,accel=tcg,memory-backend=mem", "-m", "256M",
                "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-nographic", "-kernel", kernel.toString(), "-initrd", initrd.toString(),
                "-smp", "2", "-append", "console=ttyS0 quiet panic=-1 jvirtio=restart",
                "-chardev", "socket,id=vublk0,path=" + sock, "-device", "vhost-user-blk-pci,chardev=vublk0,num-queues=2" + migrationDeviceOptions));
        cmd.addAll(List.of(extra));
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    /**
     * QEMU's vhost-user-rng-pci on {@code bin/vhost-user rng} (the runner, devices found through
     * ServiceLoader): the guest's hw_random core picks the virtio device and /dev/hwrng returns
     * data; QEMU does not warn about protocol features (no PROTOCOL_F_CONFIG offered). Also under
     * a rate limit (1 KiB per 100 ms), which makes the queue rest between periods.
     */
    @ParameterizedTest(name = "rng {0}{1}")
    @CsvSource({"'', ''", "'--max-bytes 1024 --period-ms 100', ''", "'', ',packed=on'"})
    void guestReadsTheEntropyDevice(String flags, String deviceOptions) throws Exception {
        Path sock = dir.resolve("vurng.sock");
        // Rate-limited, the queue turns the guest's buffers away (NOT_NOW) until each period starts.
        List<String> args = new java.util.ArrayList<>(List.of("rng", "--socket", sock.toString()));
        if (!flags.isEmpty()) {
            args.addAll(List.of(flags.split(" ")));
        }
        try (var backend = VhostUserRunner.start(VhostUserRunner.devices(), args.toArray(String[]::new))) {
            assertEquals(4, backend.device().deviceId());
            String out = runGuest(120, "-append", "console=ttyS0 quiet panic=-1 jvirtio=rng",
                    "-chardev", "socket,id=vurng0,path=" + sock,
                    "-device", "vhost-user-rng-pci,chardev=vurng0" + deviceOptions);
            assertTrue(out.contains("GUEST: rng_current virtio_rng"), out);
            assertTrue(out.contains("GUEST: rng packed " + (deviceOptions.contains("packed=on") ? 1 : 0)), out);
            assertTrue(out.contains("GUEST: HWRNG READ 4096 BYTES OK"), out);
            assertTrue(out.contains("GUEST: DONE"), out);
            assertFalse(out.contains("PROTOCOL_F") || out.contains("FAILED") || out.contains("NOT LOADED"), out);
            if (!flags.isEmpty()) {
                assertTrue(backend.stats().matches("stats: q0 requests=\\d+ bytes=\\d+ errors=0 in-flight=0 rests=\\d+"), "the queue rested: " + backend.stats());
            }
        }
    }
}
