package org.jvirtio.testkit;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.ChainReader;
import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueIo;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.api.linux.ErrnoException;

/**
 * The test kit's device: each chain's readable bytes come back complemented in its writable
 * buffers (the bytes written are the chain's length, readable or writable, whichever is shorter).
 * A config space of {@link #configBytes} bytes, all writable; device features
 * {@link #FEATURES}. It counts what transports do to it (activations, queue starts and stops,
 * resets, chains served) for tests to check, and plays two kinds of trouble:
 * <ul>
 * <li>storage that stops answering ({@link #stall}): chains are taken and held until
 *     {@link #unstall()}, which completes them with nothing written;</li>
 * <li>a device that waits for input ({@link #resting()}): every other chain is turned away
 *     ({@link QueueHandler#NOT_NOW}) and the device wakes itself at once, so every chain is served
 *     and the queue rests and resumes all the time.</li>
 * </ul>
 */
public final class EchoDevice extends AbstractVirtioDevice {
    public static final int DEVICE_ID = 0x3f;
    /** Device feature bits 0 and 3. */
    public static final long FEATURES = VirtioFeatures.bit(0) | VirtioFeatures.bit(3);

    private final int queues;
    private int maxQueueSize = 1024;
    private boolean resting;
    private long frontEndControlQueueFeatures;
    /** The config space; writes land here (and move the generation on). */
    public byte[] config = new byte[16];
    private final AtomicInteger generation = new AtomicInteger();
    public final AtomicInteger activations = new AtomicInteger();
    public final AtomicInteger starts = new AtomicInteger();
    public final AtomicInteger stops = new AtomicInteger();
    public final AtomicInteger resets = new AtomicInteger();
    public final AtomicInteger served = new AtomicInteger();
    public final AtomicInteger stalled = new AtomicInteger();
    /** Chains turned away, across queues. */
    public final AtomicInteger turnedAway = new AtomicInteger();
    /** The current driver session's context, or null. */
    public volatile DeviceContext context;
    /** Storage that stops answering: chains are taken and held until {@link #unstall()}. */
    public volatile boolean stall;
    /** A queue that cannot start: its handler's {@code open} fails (it releases its eventfd first). */
    public volatile boolean failOpen;
    /** A device that cannot start: {@code activate} throws. */
    public volatile boolean failActivate;
    private volatile boolean released;
    private final List<EventFd> wakeFds = new CopyOnWriteArrayList<>();

    public EchoDevice(int queues) {
        super(DEVICE_ID);
        this.queues = queues;
    }

    /** Offers queues of up to {@code n} entries (1024 by default). */
    public EchoDevice queueSizeLimit(int n) {
        this.maxQueueSize = n;
        return this;
    }

    /** A config space of {@code n} bytes (16 by default). */
    public EchoDevice configBytes(int n) {
        this.config = new byte[n];
        return this;
    }

    /** Also offers {@code bits} where the front-end serves the control queue ({@link #frontEndControlQueueFeatures}). */
    public EchoDevice frontEndControlQueueFeatures(long bits) {
        this.frontEndControlQueueFeatures = bits;
        return this;
    }

    @Override
    public long frontEndControlQueueFeatures() {
        return frontEndControlQueueFeatures;
    }

    /** Turns every other chain away and wakes itself at once (see the class comment). */
    public EchoDevice resting() {
        this.resting = true;
        return this;
    }

    /** Lets every held chain complete (with nothing written). */
    public void unstall() {
        stall = false;
        released = true;
        wakeFds.forEach(EventFd::signal);
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
        return maxQueueSize;
    }

    @Override
    public void activate(DeviceContext ctx) {
        if (failActivate) {
            throw new IllegalStateException("the echo device was told not to activate");
        }
        super.activate(ctx);
        context = ctx;
        activations.incrementAndGet();
    }

    @Override
    public void reset() {
        super.reset();
        resets.incrementAndGet();
    }

    /** Echoes complemented bytes; counts starts (opens) and stops (closes). */
    @Override
    public QueueHandler openQueue(QueueBinding q) {
        starts.incrementAndGet();
        EventFd wake;
        try {
            wake = EventFd.create(true);
        } catch (ErrnoException e) {
            throw new IllegalStateException(e);
        }
        wakeFds.add(wake);
        return new Echo(wake);
    }

    private final class Echo implements QueueHandler, QueueIo {
        private final EventFd wake;
        private final List<Integer> held = new java.util.ArrayList<>();
        private QueueCompletions done;
        private boolean turnAway;

        Echo(EventFd wake) {
            this.wake = wake;
        }

        @Override
        public void open(QueueCompletions completions) throws java.io.IOException {
            if (failOpen) {
                wakeFds.remove(wake);
                wake.close();
                throw new java.io.IOException("the echo device was told not to open its queue");
            }
            done = completions;
        }

        @Override
        public QueueIo io() {
            return this;
        }

        @Override
        public int start(DescriptorChain chain, int slot) {
            if (resting && (turnAway = !turnAway)) {
                turnedAway.incrementAndGet();
                wake.signal(); // input "arrives" at once: the queue resumes from reap()
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
            served.incrementAndGet();
            return n;
        }

        @Override
        public int completionFd() {
            return wake.fd();
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

        @Override
        public void close() {
            wakeFds.remove(wake);
            wake.close();
            stops.incrementAndGet();
        }
    }
}
