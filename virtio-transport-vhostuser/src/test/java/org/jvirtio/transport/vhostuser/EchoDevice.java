package org.jvirtio.transport.vhostuser;

import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.ChainReader;
import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.api.VirtioFeatures;

/**
 * A small test device: each chain's readable bytes come back complemented in its writable
 * buffers. 16 bytes of config space, all writable. Counts activations, starts, stops and resets.
 * A resting echo turns every other chain away ({@link QueueHandler#NOT_NOW}) and wakes itself at
 * once through its completion eventfd, so that every chain is served and the queue rests and
 * resumes all the time.
 */
final class EchoDevice implements VirtioDevice {
    static final long FEATURES = VirtioFeatures.bit(0);

    private final int queues;
    final byte[] config = new byte[16];
    private final AtomicInteger generation = new AtomicInteger();
    final AtomicInteger activations = new AtomicInteger();
    final AtomicInteger starts = new AtomicInteger();
    final AtomicInteger stops = new AtomicInteger();
    final AtomicInteger resets = new AtomicInteger();
    volatile DeviceContext context;
    /** Storage that stops answering: chains are taken and held until {@link #unstall()}. */
    volatile boolean stall;
    private volatile boolean released;
    final AtomicInteger stalled = new AtomicInteger();
    private final java.util.List<org.jvirtio.api.EventFd> completionFds = new java.util.concurrent.CopyOnWriteArrayList<>();

    private final boolean resting;
    /** Chains turned away, across queues. */
    final AtomicInteger turnedAway = new AtomicInteger();

    EchoDevice(int queues) {
        this(queues, false);
    }

    EchoDevice(int queues, boolean resting) {
        this.queues = queues;
        this.resting = resting;
    }

    @Override
    public int deviceId() {
        return 0x3f;
    }

    @Override
    public long deviceFeatures() {
        return FEATURES;
    }

    @Override
    public int configSize() {
        return config.length;
    }

    @Override
    public synchronized byte[] readConfig(int offset, int length) {
        byte[] out = new byte[length];
        System.arraycopy(config, offset, out, 0, length);
        return out;
    }

    @Override
    public synchronized void writeConfig(int offset, byte[] data) {
        System.arraycopy(data, 0, config, offset, data.length);
        generation.incrementAndGet();
    }

    @Override
    public int configGeneration() {
        return generation.get();
    }

    @Override
    public int queueCount() {
        return queues;
    }

    @Override
    public int maxQueueSize(int index) {
        return 1024;
    }

    @Override
    public void activate(DeviceContext ctx) {
        context = ctx;
        activations.incrementAndGet();
    }

    /** Lets every held chain complete (with nothing written). */
    void unstall() {
        stall = false;
        released = true;
        completionFds.forEach(org.jvirtio.api.EventFd::signal);
    }

    /** Echoes complemented bytes; counts opens (starts) and closes (stops). */
    @Override
    public QueueHandler openQueue(QueueBinding q) {
        starts.incrementAndGet();
        org.jvirtio.api.EventFd completion;
        try {
            completion = org.jvirtio.api.EventFd.create(true);
        } catch (org.jvirtio.api.linux.ErrnoException e) {
            throw new IllegalStateException(e);
        }
        completionFds.add(completion);
        java.util.List<Integer> held = new java.util.ArrayList<>();
        return new QueueHandler() {
            private org.jvirtio.api.QueueCompletions done;

            @Override
            public void open(org.jvirtio.api.QueueCompletions completions) {
                done = completions;
            }

            private boolean turnAway;

            @Override
            public org.jvirtio.api.QueueIo io() {
                return new org.jvirtio.api.QueueIo() {
                    @Override
                    public int completionFd() {
                        return completion.fd();
                    }

                    @Override
                    public int pending() {
                        return released ? held.size() : 0;
                    }

                    @Override
                    public int reap() {
                        int n = 0;
                        if (released) {
                            n = held.size();
                            held.forEach(slot -> done.complete(slot, 0));
                            held.clear();
                        }
                        if (resting) {
                            done.resume();
                        }
                        return n;
                    }
                };
            }

            @Override
            public int start(DescriptorChain chain, int slot) {
                if (resting && (turnAway = !turnAway)) {
                    turnedAway.incrementAndGet();
                    completion.signal(); // input "arrives" at once: the queue resumes from reap()
                    return NOT_NOW;
                }
                if (stall) {
                    held.add(slot);
                    stalled.incrementAndGet();
                    return PENDING;
                }
                ChainReader r = chain.reader();
                ChainWriter w = chain.writer();
                int n = (int) Math.min(r.remaining(), w.remaining());
                for (int i = 0; i < n; i++) {
                    w.writeU8(~r.readU8());
                }
                return n;
            }

            @Override
            public void close() {
                completionFds.remove(completion);
                completion.close();
                stops.incrementAndGet();
            }
        };
    }

    @Override
    public void reset() {
        resets.incrementAndGet();
    }
}
