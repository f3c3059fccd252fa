package org.jvirtio.host;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The used elements a queue engine has written and not yet published: added one by one as the
 * device completes chains, published together (one release store of {@code used->idx}, at most one
 * interrupt, only when EVENT_IDX or the flags say the driver wants it). A written length the
 * chain cannot hold is a device bug; it is clamped (and said once) so the driver never reads past
 * its buffers. The queue's thread only.
 */
final class UsedBatch {
    private static final Logger LOG = LoggerFactory.getLogger(UsedBatch.class);

    private final QueueBinding binding;
    private final Virtqueue q;
    private final String name;
    private int count;
    private boolean warnedLength;

    UsedBatch(QueueBinding binding, String name) {
        this.binding = binding;
        this.q = binding.queue();
        this.name = name;
    }

    /** Used elements written and not yet published. */
    int size() {
        return count;
    }

    /** Writes the used element returning {@code c} with {@code writtenLength} bytes written. */
    void add(DescriptorChain c, int writtenLength) {
        long writable = c.writableLength();
        int n = writtenLength;
        if (n < 0 || n > writable) {
            if (!warnedLength) {
                warnedLength = true;
                LOG.warn("{}: the device reported {} bytes written into chain {} of {} writable bytes; clamped", name,
                        writtenLength, c.head(), writable);
            }
            n = (int) Math.max(0, Math.min(Math.max(0, writtenLength), writable));
        }
        q.addUsed(c, n);
        count++;
    }

    /** Writes the used elements of {@code n} chains, the driver seeing them together ({@link Virtqueue#addUsedTogether}). */
    void addTogether(DescriptorChain[] chains, int[] writtenLengths, int n) {
        for (int i = 0; i < n; i++) {
            long writable = chains[i].writableLength();
            if (writtenLengths[i] < 0 || writtenLengths[i] > writable) {
                if (!warnedLength) {
                    warnedLength = true;
                    LOG.warn("{}: the device reported {} bytes written into chain {} of {} writable bytes; clamped", name,
                            writtenLengths[i], chains[i].head(), writable);
                }
                writtenLengths[i] = (int) Math.max(0, Math.min(Math.max(0, writtenLengths[i]), writable));
            }
        }
        q.addUsedTogether(chains, writtenLengths, n);
        count += n;
    }

    /** Publishes what was added (nothing when nothing was) and interrupts the driver if it wants that. */
    void publish() {
        if (count > 0) {
            count = 0;
            if (q.publishUsed()) {
                binding.call().signal();
            }
        }
    }
}
