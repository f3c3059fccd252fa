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

    EchoDevice(int queues) {
        this.queues = queues;
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

    /** Echoes complemented bytes; counts opens (starts) and closes (stops). */
    @Override
    public QueueHandler openQueue(QueueBinding q) {
        starts.incrementAndGet();
        return new QueueHandler() {
            @Override
            public int start(DescriptorChain chain, int slot) {
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
                stops.incrementAndGet();
            }
        };
    }

    @Override
    public void reset() {
        resets.incrementAndGet();
    }
}
