package org.jvirtio.examples;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The Linux guest the QEMU tests boot: Debian's 6.1 kernel and a busybox initramfs made by
 * {@code src/test/guest/prepare.sh} into {@code ~/.cache/jvirtio/guest}. In CI the tools must be
 * there (CI installs them); elsewhere a test without them is skipped.
 */
public record TestGuest(Path kernel, Path initrd) {
    public static final Path QEMU = Path.of("/usr/bin/qemu-system-x86_64");

    /** Prepares (or finds) the guest; assumes (or in CI asserts) that QEMU, busybox and cpio are installed. */
    public static TestGuest prepare() throws Exception {
        boolean tools = Files.isExecutable(QEMU) && Files.isExecutable(Path.of("/usr/bin/cpio"))
                && (Files.isExecutable(Path.of("/bin/busybox")) || Files.isExecutable(Path.of("/usr/bin/busybox")));
        if (System.getenv("CI") != null) {
            assertTrue(tools, "CI must install qemu-system-x86, busybox-static and cpio");
        }
        assumeTrue(tools, "qemu-system-x86_64, busybox or cpio missing");
        Path cache = Path.of(System.getProperty("user.home"), ".cache", "jvirtio", "guest");
        Path script = Path.of("src/test/guest/prepare.sh").toAbsolutePath();
        Process p = new ProcessBuilder("bash", script.toString(), cache.toString()).redirectErrorStream(true).start();
        List<String> out = new String(p.getInputStream().readAllBytes()).lines().toList();
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "guest preparation timed out");
        assertEquals(0, p.exitValue(), "guest preparation failed: " + out);
        return new TestGuest(Path.of(out.get(out.size() - 2)), Path.of(out.get(out.size() - 1)));
    }

    /** Connects to a QEMU HMP monitor socket ({@code -monitor unix:PATH,server=on,wait=off}), waiting up to 10 s for it. */
    public static java.nio.channels.SocketChannel monitor(Path sock) throws Exception {
        long until = System.nanoTime() + 10_000_000_000L;
        while (true) {
            try {
                return java.nio.channels.SocketChannel.open(java.net.UnixDomainSocketAddress.of(sock));
            } catch (java.io.IOException e) {
                assertTrue(System.nanoTime() < until, "no QEMU monitor at " + sock + ": " + e);
                Thread.sleep(20);
            }
        }
    }

    /** One HMP command over the monitor socket; returns what came back within a moment. */
    public static String hmp(java.nio.channels.SocketChannel ch, String command) throws Exception {
        ch.write(java.nio.ByteBuffer.wrap((command + "\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII)));
        Thread.sleep(300);
        ch.configureBlocking(false);
        java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(65536);
        StringBuilder sb = new StringBuilder();
        int n;
        while ((n = ch.read(buf)) > 0) {
            sb.append(new String(buf.array(), 0, n, java.nio.charset.StandardCharsets.US_ASCII));
            buf.clear();
        }
        ch.configureBlocking(true);
        return sb.toString();
    }

    /**
     * Migrates the QEMU behind monitor {@code src} to the one behind {@code dst} (started with
     * {@code -incoming unix:MIG -S}) and waits until the migration completed and the destination
     * has loaded all of it (paused, no longer "inmigrate"); fails past {@code deadline} (nanoTime).
     */
    public static void migrate(java.nio.channels.SocketChannel src, java.nio.channels.SocketChannel dst, Path mig, long deadline)
            throws Exception {
        hmp(src, "migrate -d unix:" + mig);
        String info = "";
        while (!info.contains("Migration status: completed")) {
            assertFalse(info.contains("Migration status: failed") || info.contains("Migration status: cancelled"), info);
            assertTrue(System.nanoTime() < deadline, "migration did not complete: " + info);
            Thread.sleep(200);
            info = hmp(src, "info migrate");
        }
        String status = "";
        while (!status.contains("VM status: paused") || status.contains("inmigrate")) {
            assertTrue(System.nanoTime() < deadline, "the destination did not finish loading: " + status);
            Thread.sleep(100);
            status = hmp(dst, "info status");
        }
    }

    /**
     * Starts a backend process (a command line, its output appended to {@code log}) and waits until
     * it listens on {@code sockets} more sockets than {@code log} said before (a killed backend's
     * socket files may still be there); fails if it exits or takes more than 30 s.
     */
    public static Process startBackend(List<String> cmd, Path log, int sockets) throws Exception {
        long before = listening(log);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
        org.jvirtio.testkit.Await.await(() -> {
            assertTrue(p.isAlive(), "the backend exited: " + Files.readString(log));
            return listening(log) >= before + sockets;
        }, java.time.Duration.ofSeconds(30), () -> "the backend did not listen on its sockets within 30 s: " + cmd);
        return p;
    }

    private static long listening(Path log) throws java.io.IOException {
        return Files.exists(log) ? Files.readAllLines(log).stream().filter(l -> l.contains("backend listening on")).count() : 0;
    }
}
