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
 * {@code bin/bench}: drives any vhost-user-blk backend (jvirtio's, qemu-storage-daemon's) through
 * its socket with the Java front-end, one or more queues (a thread each), a fixed queue depth, random offsets, and reports
 * IOPS, MB/s and latency percentiles. The same client for every backend, so results compare.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "End-to-end vhost-user-blk benchmark.")
public final class BlkBench implements Callable<Integer> {
    @Option(names = "--socket", required = true, description = "The backend's vhost-user socket.")
    Path socket;

    @Option(names = "--depth", defaultValue = "32", description = "Queue depth (default: ${DEFAULT-VALUE}).")
    int depth;

    @Option(names = "--bs", defaultValue = "4096", description = "Block size in bytes (default: ${DEFAULT-VALUE}).")
    int bs;

    @Option(names = "--read-percent", defaultValue = "100", description = "Share of reads, 0-100 (default: ${DEFAULT-VALUE}).")
    int readPercent;

    @Option(names = "--seconds", defaultValue = "10", description = "Measured seconds (default: ${DEFAULT-VALUE}).")
    int seconds;

    @Option(names = "--warmup", defaultValue = "2", description = "Unmeasured seconds first (default: ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--span", defaultValue = "256M", description = "Bytes of the disk to spread I/O over (default: ${DEFAULT-VALUE}).")
    String span;

    @Option(names = "--inflight", description = "Set up inflight tracking as QEMU does for vhost-user-blk (the backend then marks and clears every request).")
    boolean inflight;

    @Option(names = "--packed", description = "Take packed virtqueues where the backend offers them (QEMU's packed=on); split otherwise.")
    boolean packed;

    @Option(names = "--queues", defaultValue = "1", description = "Queues, each driven by its own thread at --depth (default: ${DEFAULT-VALUE}).")
    int queues;

    @Option(names = "--think-us", defaultValue = "0", description = "Pause this many microseconds (parked, so plus the kernel's timer slack) before replacing each completed request: a guest that does other work between I/Os, for the CPU cost of a lightly loaded queue (default: ${DEFAULT-VALUE}).")
    int thinkUs;

    @Option(names = "--poll-us", defaultValue = "0", description = "Poll the used ring up to this many microseconds before waiting for the interrupt, as a guest kernel that polls (haltpoll) does; 0 waits at once, as a plain guest (default: ${DEFAULT-VALUE}).")
    int pollUs;

    @Option(names = "--mark-file", description = "Create this file with a line \"measuring\" when the measured seconds begin (after --warmup) and add a line \"done\" when they end (before the last requests are collected and the front-end disconnects), for a script that samples CPU counters over the measured window alone.")
    Path markFile;

    @Override
    public Integer call() throws Exception {
        if (depth < 1 || depth > 128 || bs < 512 || bs % 512 != 0 || bs > (1 << 20) || readPercent < 0 || readPercent > 100 || seconds < 1 || warmup < 0
                || queues < 1 || queues > BlkClient.MAX_QUEUES || thinkUs < 0 || thinkUs > 1_000_000 || pollUs < 0 || pollUs > 1_000_000) {
            throw new CommandLine.ParameterException(new CommandLine(this),
                    "need --depth 1-128, --bs a multiple of 512 up to 1 MiB, --read-percent 0-100, --seconds >= 1, --think-us 0-1000000, --poll-us 0-1000000, --queues 1-"
                            + BlkClient.MAX_QUEUES);
        }
        if (markFile != null && (Files.exists(markFile) || !Files.isDirectory(markFile.toAbsolutePath().getParent()))) {
            throw new CommandLine.ParameterException(new CommandLine(this),
                    "--mark-file " + markFile + ": " + (Files.exists(markFile) ? "exists already (it must appear when measuring starts)" : "its directory does not exist"));
        }
        try (BlkClient c = new BlkClient(socket, depth, bs, queues, inflight, packed)) {
            c.pollBeforeWaiting(pollUs);
            long blocks = Math.min(c.capacitySectors() * 512, VhostUserBlkCommand.parseSize("--span", span)) / bs;
            if (blocks < 1) {
                throw new CommandLine.ParameterException(new CommandLine(this), "the disk is smaller than one block");
            }
            long warmEnd = System.nanoTime() + warmup * 1_000_000_000L;
            long end = warmEnd + seconds * 1_000_000_000L;
            Result[] results = new Result[queues];
            Thread[] threads = new Thread[queues];
            Exception[] failure = new Exception[1];
            for (int q = 0; q < queues; q++) {
                int qq = q;
                threads[q] = Thread.ofPlatform().name("bench-q" + q).start(() -> {
                    try {
                        results[qq] = run(c, qq, blocks, warmEnd, end);
                    } catch (Exception e) {
                        failure[0] = e;
                    }
                });
            }
            if (markFile != null) {
                parkUntil(warmEnd);
                Files.writeString(markFile, "measuring\n");
                parkUntil(end);
                Files.writeString(markFile, "done\n", java.nio.file.StandardOpenOption.APPEND);
            }
            for (Thread t : threads) {
                t.join();
            }
            if (failure[0] != null) {
                throw failure[0];
            }
            long count = 0;
            double secs = 0;
            int total = 0;
            for (Result r : results) {
                count += r.count;
                secs = Math.max(secs, r.seconds);
                total += r.n;
            }
            long[] l = new long[total];
            int at = 0;
            for (Result r : results) {
                System.arraycopy(r.lat, 0, l, at, r.n);
                at += r.n;
            }
            Arrays.sort(l);
            System.out.printf("queues %d, depth %d, bs %d, %d%% reads: %,.0f IOPS, %.1f MB/s, latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us (%,d requests in %.1f s)%n",
                    queues, depth, bs, readPercent, count / secs, count * (double) bs / secs / 1e6,
                    pct(l, 0.5), pct(l, 0.99), pct(l, 0.999), count, secs);
        }
        return 0;
    }

    private record Result(long count, double seconds, long[] lat, int n) {
    }

    /** One queue's closed loop: keep {@code depth} requests in flight until {@code end}. */
    private Result run(BlkClient c, int q, long blocks, long warmEnd, long end) throws Exception {
        SplittableRandom rnd = new SplittableRandom(7 + q);
        long[] lat = new long[1 << 22];
        int[] n = {0};
        boolean[] measuring = {false};
        long[] count = {0};
        for (int t = 0; t < depth; t++) {
            issue(c, q, t, rnd, blocks);
        }
        c.flushSubmissions(q);
        long start = 0;
        int[] inFlight = {depth};
        while (inFlight[0] > 0) {
            long now = System.nanoTime();
            if (!measuring[0] && now >= warmEnd) {
                measuring[0] = true;
                start = now;
            }
            boolean more = now < end;
            c.reap(q, (tag, status, nanos) -> {
                if (status != VirtioBlk.S_OK) {
                    throw new IllegalStateException("request failed with status " + status);
                }
                if (measuring[0]) {
                    count[0]++;
                    if (n[0] < lat.length) {
                        lat[n[0]++] = nanos;
                    }
                }
                if (more) {
                    if (thinkUs > 0) {
                        java.util.concurrent.locks.LockSupport.parkNanos(thinkUs * 1000L);
                    }
                    issue(c, q, tag, rnd, blocks);
                } else {
                    inFlight[0]--;
                }
            }, 10_000);
            c.flushSubmissions(q);
        }
        return new Result(count[0], (System.nanoTime() - start) / 1e9, lat, n[0]);
    }

    private void issue(BlkClient c, int q, int tag, SplittableRandom rnd, long blocks) {
        int type = rnd.nextInt(100) < readPercent ? VirtioBlk.T_IN : VirtioBlk.T_OUT;
        c.submit(q, tag, type, rnd.nextLong(blocks) * (bs / 512), bs, 1);
    }

    private static void parkUntil(long deadline) {
        for (long left; (left = deadline - System.nanoTime()) > 0;) {
            java.util.concurrent.locks.LockSupport.parkNanos(left);
        }
    }

    private static double pct(long[] sorted, double p) {
        return sorted.length == 0 ? 0 : sorted[Math.min(sorted.length - 1, (int) (p * sorted.length))] / 1e3;
    }

    public static void main(String[] args) {
        // A backend that is not there or stops answering: one line, not a stack trace.
        System.exit(Cli.oneLineFailures("bench", new BlkBench()).execute(args));
    }
}
