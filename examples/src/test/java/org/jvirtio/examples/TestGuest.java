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
}
