package org.jvirtio.host;

import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.VirtioDevice;

/**
 * The running queues of one device on one {@link QueueHost}: what a transport uses to start and
 * stop queues. Starting a queue asks the device for its {@link org.jvirtio.api.QueueHandler}
 * ({@link VirtioDevice#openQueue}), wraps it in a {@link QueueEngine} and hands that to the host;
 * stopping waits until every chain in flight went back to the driver. Called from the
 * transport's control thread only.
 */
public final class DeviceQueues {
    private final VirtioDevice device;
    private final QueueHost host;
    private final QueueHost.Started[] running;
    private final QueueStats[] stats;

    public DeviceQueues(VirtioDevice device, QueueHost host) {
        this(device, host, QueueStats.forQueues(device.queueCount()));
    }

    /** @param stats one per queue, kept across connections by whoever shows them */
    public DeviceQueues(VirtioDevice device, QueueHost host, QueueStats[] stats) {
        if (stats.length != device.queueCount()) {
            throw new IllegalArgumentException(stats.length + " counter sets for " + device.queueCount() + " queues");
        }
        this.device = device;
        this.host = host;
        this.running = new QueueHost.Started[device.queueCount()];
        this.stats = stats;
    }

    public VirtioDevice device() {
        return device;
    }

    /** Starts serving {@code binding}'s queue (which must not be running). */
    public void start(QueueBinding binding) {
        int i = binding.index();
        if (running[i] != null) {
            throw new IllegalStateException("queue " + i + " is already running");
        }
        QueueEngine engine = new QueueEngine(binding, device.openQueue(binding), stats[i]);
        running[i] = host.start(engine);
    }

    /** Whether queue {@code index} runs. */
    public boolean isRunning(int index) {
        return running[index] != null;
    }

    /** Stops queue {@code index}; returns once nothing of it is in flight. Does nothing if it is not running. */
    public void stop(int index) {
        QueueHost.Started r = running[index];
        if (r != null) {
            running[index] = null;
            r.stop();
        }
    }

    /** Stops every queue. */
    public void stopAll() {
        for (int i = 0; i < running.length; i++) {
            stop(i);
        }
    }
}
