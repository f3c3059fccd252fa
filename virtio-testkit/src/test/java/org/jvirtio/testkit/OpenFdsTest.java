package org.jvirtio.testkit;

import java.nio.channels.FileChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link OpenFds} counts what code under test opens, and not the JVM's own jars and runtime files. */
class OpenFdsTest {
    @TempDir
    Path dir;

    @Test
    void aSocketAndAFileAreCountedAJarAndTheRuntimesFilesAreNot() throws Exception {
        long before = OpenFds.count();
        try (SocketChannel s = SocketChannel.open(); FileChannel f = FileChannel.open(Files.createFile(dir.resolve("image")), StandardOpenOption.READ)) {
            assertEquals(before + 2, OpenFds.count(), OpenFds.describe());
            assertTrue(OpenFds.describe().contains("socket:"), OpenFds.describe());
            Path jar = Files.createFile(dir.resolve("lib.jar"));
            Path runtime = Path.of(System.getProperty("java.home"), "release");
            try (FileChannel j = FileChannel.open(jar, StandardOpenOption.READ); FileChannel r = FileChannel.open(runtime, StandardOpenOption.READ)) {
                assertEquals(before + 2, OpenFds.count(), "a jar and a file of the runtime are the JVM's: " + OpenFds.describe());
            }
        }
        assertEquals(before, OpenFds.count(), OpenFds.describe());
    }
}
