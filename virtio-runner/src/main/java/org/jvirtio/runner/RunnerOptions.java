package org.jvirtio.runner;

import java.nio.file.Files;
import java.nio.file.Path;

import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import picocli.CommandLine.Option;

/** The flags every device served by the runner has (a picocli mixin). */
public final class RunnerOptions {
    @Option(names = "--socket", required = true, paramLabel = "PATH", description = "Unix socket to listen on (created mode 0600).")
    public Path socket;

    @Option(names = "--iothreads", defaultValue = "1",
            description = "I/O threads, each an epoll event loop; queue i runs on thread i mod N (default: ${DEFAULT-VALUE}; more than the queues is pointless).")
    public int iothreads;

    @Option(names = "--thread-per-queue", description = "Run each queue on a thread of its own blocking in poll(2) instead of on the I/O threads.")
    public boolean threadPerQueue;

    @Option(names = "--poll-us", defaultValue = "32",
            description = "Busy-poll the avail ring (and pending I/O) up to this many microseconds before sleeping; adaptive like QEMU's poll-max-ns (default: ${DEFAULT-VALUE}; 0: off).")
    public int pollUs;

    @Option(names = "--allow-unsealed-memory",
            description = "Accept guest memory the front-end cannot be kept from shrinking (memory-backend-file on tmpfs or hugetlbfs, memfd with seal=off). A truncation then faults the backend's access: the queue breaks or the connection closes.")
    public boolean allowUnsealedMemory;

    @Option(names = "--drain-timeout", defaultValue = "10", paramLabel = "SECONDS",
            description = "How long stopping a queue waits for its requests in flight (storage that stalls) before giving up on them, so that QEMU's GET_VRING_BASE is answered; those requests never complete in the guest (default: ${DEFAULT-VALUE}).")
    public int drainTimeoutSeconds;

    @Option(names = "--stats", defaultValue = "0", paramLabel = "SECONDS", description = "Print per-queue counters every SECONDS (0: never).")
    public int statsSeconds;

    /** Checks the flags: each problem is one line. */
    void check() {
        if (iothreads < 1 || iothreads > 64) {
            throw new IllegalArgumentException("--iothreads must be in [1, 64], got " + iothreads);
        }
        if (pollUs < 0 || pollUs > 1_000_000 || statsSeconds < 0) {
            throw new IllegalArgumentException("--poll-us must be in [0, 1000000] and --stats not negative");
        }
        if (drainTimeoutSeconds < 1 || drainTimeoutSeconds > 3600) {
            throw new IllegalArgumentException("--drain-timeout must be in [1, 3600] seconds, got " + drainTimeoutSeconds);
        }
        Path dir = socket.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--socket " + socket + ": directory " + dir + " does not exist");
        }
    }

    /** The host the flags ask for, for a device with {@code queues} queues. */
    QueueHost host(int queues) {
        return threadPerQueue ? QueueHost.threadPerQueue(pollUs) : new IoThreads(Math.min(iothreads, Math.max(1, queues)), pollUs);
    }
}
