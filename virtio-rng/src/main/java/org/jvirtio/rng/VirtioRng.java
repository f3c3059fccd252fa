package org.jvirtio.rng;

import java.io.IOException;
import java.io.UncheckedIOException;

import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueStats;

/**
 * virtio-rng, the entropy device (VIRTIO 1.3, 5.4): one request queue, no features, no
 * configuration space. Each chain's device-writable buffers are filled from an
 * {@link EntropySource}, written straight into guest memory (nothing allocated per request), and
 * the chain goes back with the number of bytes written. With a {@link RateLimit}, a chain that
 * does not fit the current period's budget waits for the next period (as vhost-device-rng does).
 */
public final class VirtioRng extends AbstractVirtioDevice {
    /** Device ID of the entropy device (VIRTIO 1.3, 5.4.1). */
    public static final int DEVICE_ID = 4;
    /** Bytes one request gets at most (a driver asking for gigabytes would stall its queue). */
    public static final int MAX_PER_REQUEST = 64 << 10;

    private final EntropySource source;
    private final RateLimit limit;

    public VirtioRng(EntropySource source) {
        this(source, RateLimit.NONE);
    }

    public VirtioRng(EntropySource source, RateLimit limit) {
        super(DEVICE_ID);
        this.source = source;
        this.limit = limit;
    }

    @Override
    public QueueHandler openQueue(QueueBinding queue) {
        QueueStats stats = queue.stats();
        RateLimitedQueue.Filler counted = (chain, max) -> {
            int n = fill(chain, max);
            stats.addBytes(n, true);
            return n;
        };
        return limit.isUnlimited() ? (chain, slot) -> counted.fill(chain, MAX_PER_REQUEST) : new RateLimitedQueue(counted, limit);
    }

    /** Fills the writable buffers of {@code chain} with at most {@code max} bytes; returns the bytes written. */
    int fill(DescriptorChain chain, int max) {
        int total = 0;
        for (int i = chain.readableBufferCount(); i < chain.bufferCount() && total < max; i++) {
            int len = (int) Math.min(Integer.toUnsignedLong(chain.bufferLength(i)), max - total);
            int n;
            try {
                n = source.fill(chain.bufferRegion(i), chain.bufferOffset(i), len);
            } catch (IOException e) {
                throw new UncheckedIOException("entropy source: " + e.getMessage(), e);
            }
            total += n;
            if (n < len) {
                break;
            }
        }
        return total;
    }

    public EntropySource source() {
        return source;
    }
}
