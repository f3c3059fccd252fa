package org.jvirtio.runner;

import java.nio.file.Files;
import java.nio.file.Path;

import org.jvirtio.host.IoThreads;
import org.jvirtio.command.Flags;
import org.jvirtio.host.QueueHost;

/** The flags every device served by the runner has. */
public final class RunnerOptions {
    public Path socket;
    public int iothreads = 1;
    public boolean threadPerQueue;
    public int pollUs = 32;
    public int pollCreditNs = (int) org.jvirtio.host.PollingPolicy.DEFAULT_POLL_CREDIT_NANOS;
    public boolean allowUnsealedMemory;
    public int drainTimeoutSeconds = 10;
    public int statsSeconds;
    /** --metrics HOST:PORT, or null. */
    public String metrics;

    /** Declares the common flags in {@code flags}, each writing its field here. */
    public void declare(Flags flags) {
        flags.path("--socket", "PATH", "Unix socket to listen on (created mode 0600).", v -> socket = v).required();
        flags.integer("--iothreads", "N",
                "I/O threads, each an epoll event loop; queue i runs on thread i mod N (more than the queues is pointless).", 1, v -> iothreads = v);
        flags.toggle("--thread-per-queue", "Run each queue on a thread of its own blocking in poll(2) instead of on the I/O threads.",
                () -> threadPerQueue = true);
        flags.integer("--poll-us", "US",
                "Busy-poll the avail ring (and pending I/O) up to this many microseconds before sleeping; adaptive like QEMU's poll-max-ns (0: off).",
                32, v -> pollUs = v);
        flags.integer("--poll-credit-ns", "NS",
                "Each request served earns its queue this much busy-polling past the --poll-us window (banked up to 200 us), so the extra polling costs at most NS of CPU per request; keeps a busy queue polling across a guest's slow round trips (0: off; only while polling is on).",
                (int) org.jvirtio.host.PollingPolicy.DEFAULT_POLL_CREDIT_NANOS, v -> pollCreditNs = v);
        flags.toggle("--allow-unsealed-memory",
                "Accept guest memory the front-end cannot be kept from shrinking (memory-backend-file on tmpfs or hugetlbfs, memfd with seal=off). A truncation then faults the backend's access: the queue breaks or the connection closes.",
                () -> allowUnsealedMemory = true);
        flags.integer("--drain-timeout", "SECONDS",
                "How long stopping a queue waits for its requests in flight (storage that stalls) before giving up on them, so that QEMU's GET_VRING_BASE is answered; those requests never complete in the guest.",
                10, v -> drainTimeoutSeconds = v);
        flags.integer("--stats", "SECONDS", "Print per-queue counters every SECONDS (0: never).", 0, v -> statsSeconds = v);
        flags.string("--metrics", "HOST:PORT",
                "Serve every device's counters for Prometheus at http://HOST:PORT/metrics (the process's, when several devices give it: the same for all).",
                null, v -> metrics = v);
    }

    /** Checks the flags: each problem is one line. */
    void check() {
        if (socket == null) {
            throw new IllegalArgumentException("missing --socket PATH");
        }
        if (iothreads < 1 || iothreads > 64) {
            throw new IllegalArgumentException("--iothreads must be in [1, 64], got " + iothreads);
        }
        if (pollUs < 0 || pollUs > 1_000_000 || statsSeconds < 0) {
            throw new IllegalArgumentException("--poll-us must be in [0, 1000000] and --stats not negative");
        }
        if (pollCreditNs < 0 || pollCreditNs > 1_000_000) {
            throw new IllegalArgumentException("--poll-credit-ns must be in [0, 1000000], got " + pollCreditNs);
        }
        if (drainTimeoutSeconds < 1 || drainTimeoutSeconds > 3600) {
            throw new IllegalArgumentException("--drain-timeout must be in [1, 3600] seconds, got " + drainTimeoutSeconds);
        }
        if (metrics != null) {
            Metrics.parseAddress(metrics);
        }
        Path dir = socket.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--socket " + socket + ": directory " + dir + " does not exist");
        }
    }

    /** The host the flags ask for, for a device with {@code queues} queues. */
    QueueHost host(int queues) {
        return threadPerQueue ? QueueHost.threadPerQueue(pollUs, pollCreditNs)
                : new IoThreads(Math.min(iothreads, Math.max(1, queues)), pollUs, pollCreditNs);
    }
}
