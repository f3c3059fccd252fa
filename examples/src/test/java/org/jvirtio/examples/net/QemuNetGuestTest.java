package org.jvirtio.examples.net;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.jvirtio.runner.VhostUserRunner;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Two real Linux guests (QEMU 7.2, TCG) on two ports of one jvirtio switch ({@code -netdev
 * vhost-user} with virtio-net-pci; {@code vectors=0}, since QEMU 7.2 under TCG crashes setting up
 * MSI-X for vhost-user-net): each pings the other and serves 64 MiB of random bytes over HTTP,
 * fetches the other's and prints its checksum; the test compares both ways. With offloads (TSO
 * and partial checksums pass between the guests as they are) and merged buffers; without offloads
 * at MTU 9000 on packed rings; without merged buffers (Linux's "big packets": a chain of pages per
 * frame); with a receiver that negotiated neither TSO nor GUEST_CSUM (the sender's TSO frames
 * are segmented and their checksums finished by the switch); with two queue pairs on two vCPUs (QEMU runs one vhost device per pair on the one
 * connection, each adding the same memory regions). Without merged buffers and without GUEST_TSO,
 * Linux 6.1 posts 1.5 KiB buffers whatever the MTU, so that pair is not tried at MTU 9000.
 */
class QemuNetGuestTest {
    private static final Path QEMU = Path.of("/usr/bin/qemu-system-x86_64");
    private static Path kernel;
    private static Path initrd;

    @TempDir
    Path dir;

    @BeforeAll
    static void prepareGuest() throws Exception {
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
        kernel = Path.of(out.get(out.size() - 2));
        initrd = Path.of(out.get(out.size() - 1));
    }

    private Process guest(String name, Path sock, String ip, String peer, String mac, int mtu, int pairs, String deviceOptions)
            throws Exception {
        List<String> cmd = new ArrayList<>(List.of(QEMU.toString(), "-machine", "q35,accel=tcg,memory-backend=mem", "-m", "256M",
                "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-nographic", "-kernel", kernel.toString(),
                "-initrd", initrd.toString(),
                "-append", "console=ttyS0 quiet panic=-1 jvirtio=net jvirtio_ip=" + ip + " jvirtio_peer=" + peer + " jvirtio_mtu=" + mtu
                        + " jvirtio_mb=64",
                "-chardev", "socket,id=c0,path=" + sock,
                "-netdev", "vhost-user,id=n0,chardev=c0" + (pairs > 1 ? ",queues=" + pairs : ""),
                "-device", "virtio-net-pci,netdev=n0,vectors=0,mac=" + mac + (pairs > 1 ? ",mq=on" : "") + deviceOptions));
        if (pairs > 1) {
            cmd.addAll(List.of("-smp", String.valueOf(pairs)));
        }
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve(name + ".log").toFile()).start();
    }

    private static String line(String out, String prefix) {
        Matcher m = Pattern.compile("GUEST: " + Pattern.quote(prefix) + " (\\S+)").matcher(out);
        return m.find() ? m.group(1) : null;
    }

    @ParameterizedTest(name = "{0} {1} mtu {2} pairs {3} {4}")
    @CsvSource({
        "'', '', 1500, 1, ''",
        "'', '', 1500, 1, ',guest_tso4=off,guest_tso6=off,guest_csum=off'",
        "'--offloads off --mtu 9000', ',packed=on', 9000, 1, ''",
        "'--mrg-rxbuf off', '', 1500, 1, ''",
        "'--queue-pairs 2', ',packed=on', 1500, 2, ''"})
    void twoGuestsPingAndMove64MiBEachWay(String flags, String deviceOptions, int mtu, int pairs, String onlyB) throws Exception {
        String sw = "guests" + System.nanoTime();
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        List<String> common = new ArrayList<>(List.of("--switch", sw));
        if (!flags.isEmpty()) {
            common.addAll(List.of(flags.split(" ")));
        }
        List<String> argsA = new ArrayList<>(List.of("net", "--socket", a.toString()));
        argsA.addAll(common);
        List<String> argsB = new ArrayList<>(List.of("net", "--socket", b.toString()));
        argsB.addAll(common);
        try (var pa = VhostUserRunner.start(VhostUserRunner.devices(), argsA.toArray(String[]::new));
             var pb = VhostUserRunner.start(VhostUserRunner.devices(), argsB.toArray(String[]::new))) {
            Process ga = guest("a", a, "10.0.0.1", "10.0.0.2", "52:54:00:00:00:0a", mtu, pairs, deviceOptions);
            Process gb = guest("b", b, "10.0.0.2", "10.0.0.1", "52:54:00:00:00:0b", mtu, pairs, deviceOptions + onlyB);
            boolean doneA = ga.waitFor(140, TimeUnit.SECONDS);
            boolean doneB = gb.waitFor(20, TimeUnit.SECONDS);
            ga.destroyForcibly();
            gb.destroyForcibly();
            String outA = Files.readString(dir.resolve("a.log"));
            String outB = Files.readString(dir.resolve("b.log"));
            String both = "guest a: " + outA + "\nguest b: " + outB + "\nports: " + pa.stats() + "\n" + pb.stats();
            assertTrue(doneA && doneB, "the guests did not finish: " + both);
            for (String out : List.of(outA, outB)) {
                assertTrue(out.contains("GUEST: PING OK"), both);
                assertTrue(out.contains("GUEST: DONE"), both);
                assertFalse(out.contains("MTU " + mtu + " REFUSED"), both);
                String features = line(out, "net features");
                assertNotNull(features, both);
                assertEquals(deviceOptions.contains("packed=on") ? '1' : '0', features.charAt(34), "RING_PACKED: " + both);
                assertEquals(flags.contains("--offloads off") ? '0' : '1', features.charAt(11), "HOST_TSO4: " + both);
                assertEquals(flags.contains("--mrg-rxbuf off") ? '0' : '1', features.charAt(15), "MRG_RXBUF: " + both);
                assertTrue(out.contains("queues " + pairs), both);
            }
            assertNotNull(line(outA, "SERVING"), both);
            assertEquals(line(outA, "SERVING"), line(outB, "GOT"), "a to b: " + both);
            assertEquals(line(outB, "SERVING"), line(outA, "GOT"), "b to a: " + both);
            var portA = ((org.jvirtio.net.VirtioNetDevice) pa.device()).port();
            assertTrue(portA.txBytes() >= 64 << 20, both);
            assertEquals(0, portA.txDropped(), both);
        }
    }
}
