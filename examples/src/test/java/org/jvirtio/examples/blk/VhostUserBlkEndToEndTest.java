package org.jvirtio.examples.blk;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import org.jvirtio.blk.VirtioBlk;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import static org.junit.jupiter.api.Assertions.*;

/** The vhost-user-blk example driven by the Java front-end over a real socket. */
class VhostUserBlkEndToEndTest {
    @TempDir
    Path dir;

    private VhostUserBlkCommand.Running start(String... args) throws Exception {
        VhostUserBlkCommand cmd = new VhostUserBlkCommand();
        new CommandLine(cmd).parseArgs(args);
        return cmd.start();
    }

    private static int status(BlkClient c, int tag, int type, long sector, int bytes) throws Exception {
        c.submit(tag, type, sector, bytes);
        c.flushSubmissions();
        int[] st = {-1};
        c.reap((t, s, n) -> st[0] = s, 10_000);
        return st[0];
    }

    @Test
    void imageWriteReadVerifyFlushDiscardAndGetId() throws Exception {
        Path img = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16 << 20);
        }
        Path sock = dir.resolve("blk.sock");
        try (var backend = start("--socket", sock.toString(), "--image", img.toString(), "--serial", "e2e-serial");
             BlkClient c = new BlkClient(sock, 8, 65536)) {
            assertEquals((16 << 20) / 512, c.capacitySectors());
            byte[] data = new byte[65536];
            new java.util.Random(1).nextBytes(data);
            c.put(0, data);
            assertEquals(VirtioBlk.S_OK, status(c, 0, VirtioBlk.T_OUT, 2048, 65536));
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_FLUSH, 0, 0));
            c.put(1, new byte[65536]);
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_IN, 2048, 65536));
            assertArrayEquals(data, c.get(1, 65536));
            byte[] onDisk = new byte[65536];
            try (var f = new java.io.RandomAccessFile(img.toFile(), "r")) {
                f.seek(2048 * 512);
                f.readFully(onDisk);
            }
            assertArrayEquals(data, onDisk);
            assertEquals(VirtioBlk.S_OK, status(c, 2, VirtioBlk.T_GET_ID, 0, 512));
            assertEquals("e2e-serial", new String(c.get(2, 10), StandardCharsets.US_ASCII));
            assertEquals(VirtioBlk.S_IOERR, status(c, 3, VirtioBlk.T_IN, (16 << 20) / 512, 4096));
            assertEquals(VirtioBlk.S_UNSUPP, status(c, 4, 77, 0, 0));
            assertTrue(backend.device().stats(0).requests() >= 6);
        }
    }

    @Test
    void readOnlyDiskRefusesWrites() throws Exception {
        Path sock = dir.resolve("ro.sock");
        try (var backend = start("--socket", sock.toString(), "--ram", "4M", "--read-only");
             BlkClient c = new BlkClient(sock, 2, 4096)) {
            assertTrue(org.jvirtio.api.VirtioFeatures.has(c.features(), org.jvirtio.api.VirtioFeatures.BLK_RO));
            assertEquals(VirtioBlk.S_IOERR, status(c, 0, VirtioBlk.T_OUT, 0, 4096));
            assertEquals(VirtioBlk.S_OK, status(c, 1, VirtioBlk.T_IN, 0, 4096));
        }
    }

    @Test
    void disconnectMidIoThenReconnect() throws Exception {
        Path sock = dir.resolve("re.sock");
        try (var backend = start("--socket", sock.toString(), "--ram", "8M")) {
            var gone = backend.transport().nextDisconnect();
            BlkClient first = new BlkClient(sock, 16, 4096);
            for (int t = 0; t < 16; t++) {
                first.submit(t, VirtioBlk.T_OUT, t * 8L, 4096);
            }
            first.flushSubmissions();
            first.close(); // requests may still be in flight in the backend
            gone.get(10, java.util.concurrent.TimeUnit.SECONDS);
            try (BlkClient second = new BlkClient(sock, 4, 4096)) {
                byte[] d = new byte[4096];
                Arrays.fill(d, (byte) 5);
                second.put(0, d);
                assertEquals(VirtioBlk.S_OK, status(second, 0, VirtioBlk.T_OUT, 0, 4096));
                assertEquals(VirtioBlk.S_OK, status(second, 1, VirtioBlk.T_IN, 0, 4096));
                assertArrayEquals(d, second.get(1, 4096));
            }
        }
    }

    @Test
    void theMainJobRunsAndVerifies() {
        CommandLine cmd = BlkDemo.commandLine();
        assertEquals(0, cmd.execute("--seconds", "1", "--depth", "8", "--disk", "16M"));
        assertEquals(2, BlkDemo.commandLine().execute("--depth", "0"));
    }

    @Test
    void badFlagsAndUnusableImagesExitWith2() throws Exception {
        String sock = dir.resolve("x.sock").toString();
        Files.write(dir.resolve("odd.img"), new byte[1000]);
        String[][] cases = {
            {"--socket", sock, "--ram", "1000"},
            {"--socket", sock, "--ram", "lots"},
            {"--socket", dir.resolve("missing/x.sock").toString(), "--ram", "1M"},
            {"--socket", sock, "--image", dir.resolve("none.img").toString()},
            {"--socket", sock, "--image", dir.resolve("odd.img").toString()},
            {"--socket", sock},
            {"--socket", sock, "--ram", "1M", "--null", "1M"},
            {"--socket", sock, "--ram", "1M", "--queues", "0"},
            {"--socket", sock, "--ram", "1M", "--direct"},
            {"--ram", "1M"},
        };
        for (String[] args : cases) {
            CommandLine cmd = VhostUserBlkCommand.commandLine();
            StringWriter err = new StringWriter();
            cmd.setErr(new PrintWriter(err));
            cmd.setOut(new PrintWriter(new StringWriter()));
            assertEquals(2, cmd.execute(args), String.join(" ", args));
            assertEquals(1, err.toString().strip().lines().count(), "one line: " + err);
            assertFalse(Files.exists(dir.resolve("x.sock")), "nothing listens after a refused start");
        }
    }
}
