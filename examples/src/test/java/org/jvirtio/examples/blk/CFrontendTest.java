package org.jvirtio.examples.blk;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.jvirtio.examples.LayeringTest;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The blk backend driven by a front-end that shares no code with jvirtio: bench/vu-blk-client.c,
 * written in C from vhost-user.rst and VIRTIO 1.3, compiled here with the system's C compiler.
 * It writes blocks with a pattern, reads them back and compares (and the test reads the image
 * file itself), then runs its depth-1 random-read loop briefly in both waiting modes: on the call
 * eventfd (as a guest waits for interrupts; the backend may make the shared eventfd non-blocking)
 * and spinning on used->idx. What the Java front-end would hide (its own reading of the spec,
 * its feature choices) is not in this loop.
 */
class CFrontendTest {
    @TempDir
    static Path bin;
    @TempDir
    Path dir;
    static Path client;

    @BeforeAll
    static void compile() throws Exception {
        Path source = LayeringTest.root().resolve("bench/vu-blk-client.c");
        assertTrue(Files.exists(source), source + " is missing");
        client = bin.resolve("vu-blk-client");
        Process cc;
        try {
            cc = new ProcessBuilder("cc", "-O2", "-Wall", "-Werror", "-o", client.toString(), source.toString())
                    .redirectErrorStream(true).start();
        } catch (java.io.IOException e) {
            assumeTrue(false, "no C compiler (cc) here: " + e.getMessage());
            return;
        }
        String out = new String(cc.getInputStream().readAllBytes());
        assertTrue(cc.waitFor(60, TimeUnit.SECONDS), "cc finished");
        assertEquals(0, cc.exitValue(), "cc: " + out);
    }

    static String run(String... args) throws Exception {
        Process p = new ProcessBuilder(List.of(args)).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the C front-end finished: " + out);
        assertEquals(0, p.exitValue(), "the C front-end: " + out);
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"--image", "--ram"})
    void aFrontEndWrittenInCWritesReadsBackAndReadsAtDepthOne(String disk) throws Exception {
        int blocks = 2000;
        Path img = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16 << 20);
        }
        Path sock = dir.resolve("c.sock");
        try (var backend = VhostUserBlkCommand.start("--socket", sock.toString(), disk, disk.equals("--image") ? img.toString() : "16M")) {
            String verified = run(client.toString(), sock.toString(), "--verify", Integer.toString(blocks));
            assertTrue(verified.contains("verified: wrote and read back " + blocks + " blocks"), verified);
            if (disk.equals("--image")) {
                // The pattern, as the client writes it, in the image file: block b, word w.
                byte[] onDisk = Files.readAllBytes(img);
                java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(onDisk).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                for (int b : new int[] {0, 1, 777, blocks - 1}) {
                    for (int w : new int[] {0, 1, 511}) {
                        assertEquals(((long) b << 32) ^ (w * 0x9e3779b97f4a7c15L), bb.getLong(b * 4096 + w * 8), "block " + b + " word " + w);
                    }
                }
            }
            for (String mode : new String[] {"--seconds", "--poll"}) {
                String out = mode.equals("--poll")
                        ? run(client.toString(), sock.toString(), "--seconds", "0.5", "--warmup", "0", "--span", "8000000", "--poll")
                        : run(client.toString(), sock.toString(), "--seconds", "0.5", "--warmup", "0", "--span", "8000000");
                assertTrue(out.matches("(?s)reads: \\d+ IOPS, p50 [0-9.]+ us, p99 [0-9.]+ us \\((\\d+) requests\\)\\s*"), out);
                long requests = Long.parseLong(out.replaceAll("(?s).*\\((\\d+) requests\\).*", "$1"));
                assertTrue(requests > 0, out);
            }
            assertTrue(backend.device().stats(0).requests() >= 2L * blocks, "the backend served every request");
        }
    }
}
