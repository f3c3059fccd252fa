package org.jvirtio.transport.mmio;

import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.ChainReader;
import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.VirtioFeatures;

/** Test device: each chain's readable bytes come back complemented; 8 bytes of writable config. */
final class EchoDevice extends AbstractVirtioDevice {
    final byte[] config = new byte[8];
    final AtomicInteger generation = new AtomicInteger();
    final AtomicInteger activations = new AtomicInteger();
    final AtomicInteger resets = new AtomicInteger();
    final AtomicInteger served = new AtomicInteger();
    volatile DeviceContext ctx;
    private final int queues;

    EchoDevice(int queues) {
        super(0x3f);
        this.queues = queues;
    }

    @Override
    public long deviceFeatures() {
        return VirtioFeatures.bit(0) | VirtioFeatures.bit(3);
    }

    @Override
    public int queueCount() {
        return queues;
    }

    @Override
    public int maxQueueSize(int index) {
        return 64;
    }

    @Override
    public int configSize() {
        return config.length;
    }

    @Override
    public synchronized byte[] readConfig(int offset, int length) {
        return java.util.Arrays.copyOfRange(config, offset, offset + length);
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
    public void activate(DeviceContext context) {
        super.activate(context);
        ctx = context;
        activations.incrementAndGet();
    }

    @Override
    public void reset() {
        super.reset();
        resets.incrementAndGet();
    }

    @Override
    public QueueHandler openQueue(QueueBinding binding) {
        return (DescriptorChain chain, int slot) -> {
            ChainReader r = chain.reader();
            ChainWriter w = chain.writer();
            int n = (int) Math.min(r.remaining(), w.remaining());
            for (int i = 0; i < n; i++) {
                w.writeU8(~r.readU8());
            }
            served.incrementAndGet();
            return n;
        };
    }
}
