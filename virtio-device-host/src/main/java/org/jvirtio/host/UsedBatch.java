package org.jvirtio.host;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.Virtqueue;
import org.jvirtio.api.jfr.SlowRequestEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A queue engine's return side: a completed request's slot freed (its latency counted, a slow one
 * recorded as a JFR event) and its chain written used, then the used elements published together
 * (one release store of {@code used->idx}, at most one interrupt, only when EVENT_IDX or the flags
 * say the driver wants it). A written length the chain cannot hold is a device bug; it is clamped
 * (and said once) so the driver never reads past its buffers. After {@link #abandon()} slots are
 * still freed but nothing is written to the ring. The queue's thread only, but for abandon.
 */
final class UsedBatch {
    private static final Logger LOG = LoggerFactory.getLogger(UsedBatch.class);

    private final QueueBinding binding;
    private final Virtqueue q;
    private final String name;
    private final Slots slots;
    private int count;
    private boolean warnedLength;
    /**
     * The ring is no longer ours ({@link QueueEngine#abandon()}): completions free their slots but
     * are not returned to the driver. Volatile because a stop that gave up waiting sets it from the
     * transport's thread while the owning thread may be inside the handler; on x86 reading it
     * is a plain load.
     */
    private volatile boolean abandoned;

    UsedBatch(QueueBinding binding, String name, Slots slots) {
        this.binding = binding;
        this.q = binding.queue();
        this.name = name;
        this.slots = slots;
    }

    void abandon() {
        abandoned = true;
    }

    boolean abandoned() {
        return abandoned;
    }

    /**
     * Frees {@code slot} at {@code now} and writes its chain used with {@code writtenLength}
     * bytes; false when the slot holds no chain.
     */
    boolean complete(int slot, int writtenLength, long now) {
        DescriptorChain c = slots.chain(slot);
        if (c == null) {
            return false;
        }
        release(slot, c, now);
        if (!abandoned) {
            q.addUsed(c, clamp(c, writtenLength));
            count++;
        }
        return true;
    }

    /**
     * Frees {@code slot} at {@code now} and writes the used elements of {@code n} chains, the
     * slot's first, the driver seeing them together ({@link Virtqueue#addUsedTogether}); false
     * when the slot does not hold the first of them.
     */
    boolean completeTogether(int slot, DescriptorChain[] chains, int[] writtenLengths, int n, long now) {
        DescriptorChain c = slots.chain(slot);
        if (c == null || n < 1 || chains[0] != c) {
            return false;
        }
        release(slot, c, now);
        if (!abandoned) {
            for (int i = 0; i < n; i++) {
                writtenLengths[i] = clamp(chains[i], writtenLengths[i]);
            }
            q.addUsedTogether(chains, writtenLengths, n);
            count += n;
        }
        return true;
    }

    /** The slot of chain {@code c} is free; its latency counted, a slow one recorded. */
    private void release(int slot, DescriptorChain c, long now) {
        long latency = slots.release(slot, now);
        if (latency > SlowRequestEvent.THRESHOLD_NANOS) {
            SlowRequestEvent.emit(binding.index(), c.head(), latency);
        }
    }

    /** Used elements written and not yet published. */
    int size() {
        return count;
    }

    private int clamp(DescriptorChain c, int writtenLength) {
        long writable = c.writableLength();
        if (writtenLength >= 0 && writtenLength <= writable) {
            return writtenLength;
        }
        if (!warnedLength) {
            warnedLength = true;
            LOG.warn("{}: the device reported {} bytes written into chain {} of {} writable bytes; clamped", name,
                    writtenLength, c.head(), writable);
        }
        return (int) Math.max(0, Math.min(Math.max(0, writtenLength), writable));
    }

    /** Publishes what was added (nothing when nothing was, or abandoned) and interrupts the driver if it wants that. */
    void publish() {
        if (count > 0 && !abandoned) {
            count = 0;
            if (q.publishUsed()) {
                binding.call().signal();
            }
        }
    }
}
