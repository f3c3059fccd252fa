package org.jvirtio.examples.blk;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.examples.cli.Cli;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bin/demo}, the main job: starts the vhost-user-blk backend on a RAM disk and drives it
 * through a real Unix socket with the Java front-end: writes a pattern to every block of a
 * working set, reads everything back and verifies it, then runs random 4 KiB reads (verified)
 * and writes for a few seconds and reports IOPS and latency percentiles. No QEMU needed.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Start a vhost-user-blk backend on a RAM disk and drive it with the Java front-end.")
public final class BlkDemo implements Callable<Integer> {
    @Option(names = "--seconds", defaultValue = "3", description = "Length of the random I/O phase (default: ${DEFAULT-VALUE}).")
    int seconds;

    @Option(names = "--depth", defaultValue = "16", description = "Requests in flight, 1 to 128 (default: ${DEFAULT-VALUE}).")
    int depth;

    @Option(names = "--packed", description = "Drive the disk through packed virtqueues instead of split ones.")
    boolean packed;

    @Option(names = "--disk", defaultValue = "64M", description = "RAM disk size (default: ${DEFAULT-VALUE}).")
    String disk;

    static final int BLOCK = 4096;

    @Override
    public Integer call() throws Exception {
        if (seconds < 1 || depth < 1 || depth > 128) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--seconds must be >= 1 and --depth in [1, 128]");
        }
        long diskBytes;
        try {
            diskBytes = VhostUserBlkCommand.parseSize("--disk", disk);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(new CommandLine(this), e.getMessage());
        }
        Path dir = Files.createTempDirectory("jvirtio-demo");
        Path socket = dir.resolve("vublk.sock");
        try (VhostUserBlkCommand.Running backend = VhostUserBlkCommand.start("--socket", socket.toString(), "--ram", Long.toString(diskBytes));
             BlkClient client = new BlkClient(socket, depth, BLOCK, 1, false, packed)) {
            long blocks = Math.min(client.capacitySectors() * 512 / BLOCK, 4096);
            System.out.printf("backend: %s; front-end negotiated features 0x%x%n", backend.disk().describe(), client.features());
            // Phase 1: write every block of the working set, read all back, verify.
            long t0 = System.nanoTime();
            runAll(client, blocks, VirtioBlk.T_OUT);
            runAll(client, blocks, VirtioBlk.T_IN);
            System.out.printf("verified: wrote and read back %d blocks of %d bytes in %.2f s%n", blocks, BLOCK, (System.nanoTime() - t0) / 1e9);
            // Phase 2: random reads (verified against the pattern) and writes of the same pattern.
            long[] lat = new long[1 << 22];
            int[] nLat = {0};
            long[] blockOf = new long[depth];
            int[] typeOf = new int[depth];
            SplittableRandom rnd = new SplittableRandom(42);
            long end = System.nanoTime() + seconds * 1_000_000_000L;
            long done = 0;
            long start = System.nanoTime();
            for (int tag = 0; tag < depth; tag++) {
                issueRandom(client, tag, rnd, blocks, blockOf, typeOf);
            }
            client.flushSubmissions();
            long[] completed = {0};
            int[] inFlight = {depth};
            while (inFlight[0] > 0) {
                boolean more = System.nanoTime() < end;
                client.reap((tag, status, nanos) -> {
                    check(status == VirtioBlk.S_OK, "request failed with status " + status);
                    if (typeOf[tag] == VirtioBlk.T_IN) {
                        check(Arrays.equals(client.get(tag, BLOCK), pattern(blockOf[tag])), "block " + blockOf[tag] + " read back wrong");
                    }
                    if (nLat[0] < lat.length) {
                        lat[nLat[0]++] = nanos;
                    }
                    completed[0]++;
                    if (more) {
                        issueRandom(client, tag, rnd, blocks, blockOf, typeOf);
                    } else {
                        inFlight[0]--;
                    }
                }, 10_000);
                client.flushSubmissions();
            }
            done = completed[0];
            double secs = (System.nanoTime() - start) / 1e9;
            long[] l = Arrays.copyOf(lat, nLat[0]);
            Arrays.sort(l);
            System.out.printf("random 4 KiB, 70%% read / 30%% write, depth %d: %,d requests in %.2f s = %,.0f IOPS, %.1f MB/s%n",
                    depth, done, secs, done / secs, done * (double) BLOCK / secs / 1e6);
            System.out.printf("latency: p50 %.1f us, p99 %.1f us, p99.9 %.1f us; every read verified%n",
                    pct(l, 0.50), pct(l, 0.99), pct(l, 0.999));
        } finally {
            Files.deleteIfExists(socket);
            Files.deleteIfExists(dir);
        }
        return 0;
    }

    private static double pct(long[] sorted, double p) {
        return sorted.length == 0 ? 0 : sorted[Math.min(sorted.length - 1, (int) (p * sorted.length))] / 1e3;
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalStateException(what);
        }
    }

    static byte[] pattern(long block) {
        byte[] b = new byte[BLOCK];
        long x = block * 0x9E3779B97F4A7C15L + 1;
        for (int i = 0; i < BLOCK; i += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            for (int k = 0; k < 8; k++) {
                b[i + k] = (byte) (x >>> (8 * k));
            }
        }
        return b;
    }

    private static void issueRandom(BlkClient c, int tag, SplittableRandom rnd, long blocks, long[] blockOf, int[] typeOf) {
        long block = rnd.nextLong(blocks);
        int type = rnd.nextInt(10) < 7 ? VirtioBlk.T_IN : VirtioBlk.T_OUT;
        if (type == VirtioBlk.T_OUT) {
            c.put(tag, pattern(block));
        }
        blockOf[tag] = block;
        typeOf[tag] = type;
        c.submit(tag, type, block * (BLOCK / 512), BLOCK);
    }

    /** Writes (or reads and verifies) blocks [0, n) with all tags in flight. */
    private static void runAll(BlkClient c, long n, int type) throws Exception {
        long[] next = {0};
        long[] blockOf = new long[c.depth()];
        int[] inFlight = {0};
        for (int tag = 0; tag < c.depth() && next[0] < n; tag++) {
            submitBlock(c, tag, next[0]++, type, blockOf);
            inFlight[0]++;
        }
        c.flushSubmissions();
        while (inFlight[0] > 0) {
            c.reap((tag, status, nanos) -> {
                check(status == VirtioBlk.S_OK, "block " + blockOf[tag] + ": status " + status);
                if (type == VirtioBlk.T_IN) {
                    check(Arrays.equals(c.get(tag, BLOCK), pattern(blockOf[tag])), "block " + blockOf[tag] + " read back wrong");
                }
                if (next[0] < n) {
                    submitBlock(c, tag, next[0]++, type, blockOf);
                } else {
                    inFlight[0]--;
                }
            }, 10_000);
            c.flushSubmissions();
        }
    }

    private static void submitBlock(BlkClient c, int tag, long block, int type, long[] blockOf) {
        if (type == VirtioBlk.T_OUT) {
            c.put(tag, pattern(block));
        }
        blockOf[tag] = block;
        c.submit(tag, type, block * (BLOCK / 512), BLOCK);
    }

    static CommandLine commandLine() {
        return Cli.of("demo", new BlkDemo());
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
