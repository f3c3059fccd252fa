package org.jvirtio.host;

import java.time.Duration;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueStats;
import org.jvirtio.api.VirtioDevice;

/**
 * The running queues of one device on one {@link QueueHost}: what a transport uses to start and
 * stop queues. Starting a queue asks the device for its {@link org.jvirtio.api.QueueHandler}
 * ({@link VirtioDevice#openQueue}), wraps it in a {@link QueueEngine} and hands that to the host;
 * stopping waits until every chain in flight went back to the driver, for at most the drain
 * limit (then the queue is abandoned: see {@link QueueHost.Started#stop(long)}). The guest memory
 * a queue was started with stays mapped until its engine has closed, however late that is.
 * Called from the transport's control thread only.
 */
public final class DeviceQueues {
    /**
     * How long a stop waits for requests in flight by default: longer than any storage that
     * works takes, well short of what the guest's own I/O timeout (30 s in Linux) and an operator
     * at a frozen QEMU monitor put up with.
     */
    public static final Duration DEFAULT_DRAIN_LIMIT = Duration.ofSeconds(10);

    private final VirtioDevice device;
    private final long drainLimitNanos;
    private final QueueHost host;
    private final QueueHost.Started[] running;
    private final QueueStats[] stats;

    public DeviceQueues(VirtioDevice device, QueueHost host) {
        this(device, host, QueueStats.forQueues(device.queueCount()));
    }

    /** @param stats one per queue, kept across connections by whoever shows them */
    public DeviceQueues(VirtioDevice device, QueueHost host, QueueStats[] stats) {
        this(device, host, stats, DEFAULT_DRAIN_LIMIT);
    }

    /**
     * @param stats      one per queue, kept across connections by whoever shows them
     * @param drainLimit how long a stop waits for requests in flight before abandoning them
     */
    public DeviceQueues(VirtioDevice device, QueueHost host, QueueStats[] stats, Duration drainLimit) {
        if (drainLimit.isNegative()) {
            throw new IllegalArgumentException("negative drain limit: " + drainLimit);
        }
        this.drainLimitNanos = drainLimit.toNanos();
        if (stats.length != device.queueCount()) {
            throw new IllegalArgumentException(stats.length + " counter sets for " + device.queueCount() + " queues");
        }
        this.device = device;
        this.host = host;
        this.running = new QueueHost.Started[device.queueCount()];
        this.stats = stats;
    }

    /** Queue {@code index}'s counters. */
    public QueueStats stats(int index) {
        return stats[index];
    }

    public VirtioDevice device() {
        return device;
    }

    /** Starts serving {@code binding}'s queue (which must not be running); the caller keeps its memory mapped. */
    public void start(QueueBinding binding) {
        start(binding, null);
    }

    /**
     * Starts serving {@code binding}'s queue (which must not be running) over {@code memory},
     * which is retained until the queue's engine has closed.
     */
    public void start(QueueBinding binding, GuestMemory memory) {
        int i = binding.index();
        if (running[i] != null) {
            throw new IllegalStateException("queue " + i + " is already running");
        }
        QueueBinding counted = binding.withStats(stats[i]);
        QueueEngine engine = new QueueEngine(counted, device.openQueue(counted));
        QueueHost.Started started = host.start(engine);
        running[i] = started;
        if (memory != null) {
            memory.retain();
            started.whenClosed(memory::release);
        }
    }

    /** Whether queue {@code index} runs. */
    public boolean isRunning(int index) {
        return running[index] != null;
    }

    /**
     * Stops queue {@code index}; returns once nothing of it is in flight, or at the drain limit.
     * Does nothing if it is not running.
     *
     * @return false when requests were abandoned: the ring (queue object included) is no
     *         longer this engine's, and must not be activated again while they are out
     */
    public boolean stop(int index) {
        return stop(index, drainLimitNanos);
    }

    private boolean stop(int index, long limitNanos) {
        QueueHost.Started r = running[index];
        if (r == null) {
            return true;
        }
        running[index] = null;
        return r.stop(limitNanos);
    }

    /**
     * Makes every running queue take nothing new, without waiting: what is in flight completes
     * meanwhile, so that a stop that comes later (of these queues, and of other devices' in a
     * process shutting down) finds less to wait for.
     */
    public void requestStopAll() {
        for (QueueHost.Started r : running) {
            if (r != null) {
                r.requestStop();
            }
        }
    }

    /** Stops every queue, each within the drain limit. */
    public void stopAll() {
        for (int i = 0; i < running.length; i++) {
            stop(i);
        }
    }

    /**
     * Stops every queue within {@code limit} all together (a process shutting down): whatever is
     * still in flight at the end is abandoned.
     *
     * @return false when something was abandoned
     */
    public boolean stopAll(Duration limit) {
        requestStopAll();
        long end = System.nanoTime() + limit.toNanos();
        boolean all = true;
        for (int i = 0; i < running.length; i++) {
            all &= stop(i, Math.max(10_000_000L, end - System.nanoTime()));
        }
        return all;
    }
}
