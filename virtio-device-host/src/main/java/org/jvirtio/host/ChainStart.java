package org.jvirtio.host;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueStats;
import org.jvirtio.api.RateLimitedLog;
import org.jvirtio.api.Virtqueue;
import org.slf4j.LoggerFactory;

/**
 * A queue engine handing one popped chain to its device: a slot for it, the handler's
 * {@code start}, and what its answer means: done at once (returned through the engine's
 * {@code complete}), {@code PENDING}, or {@code NOT_NOW} (the chain back into the ring untaken,
 * its slot freed, the queue resting). A handler that throws loses nothing: the chain goes back
 * with nothing written and its slot is freed. The queue's thread only.
 */
final class ChainStart {
    /** A handler failing on a chain: the guest may be what makes it fail, as often as it likes. */
    private static final RateLimitedLog HANDLER_FAILURES = RateLimitedLog.perSecond(LoggerFactory.getLogger(QueueEngine.class));

    private final QueueHandler handler;
    private final Virtqueue q;
    private final Slots slots;
    private final Rest rest;
    private final QueueStats stats;
    private final QueueCompletions completions;
    private final String name;

    ChainStart(QueueHandler handler, Virtqueue q, Slots slots, Rest rest, QueueStats stats, QueueCompletions completions, String name) {
        this.handler = handler;
        this.q = q;
        this.slots = slots;
        this.rest = rest;
        this.stats = stats;
        this.completions = completions;
        this.name = name;
    }

    /** Hands {@code c}, taken at {@code now}, to the device; false when the device put it back ({@link QueueHandler#NOT_NOW}). */
    boolean start(DescriptorChain c, long now) {
        int slot = slots.take(c, now);
        int written;
        try {
            written = handler.start(c, slot);
        } catch (RuntimeException | Error e) {
            // A device bug, or a fault touching guest memory: the chain still goes back, so the
            // driver is not left waiting for it, and the slot is not lost.
            HANDLER_FAILURES.warn("{}: the device failed on chain {}: {}", name, c.head(), e.toString());
            written = 0;
        }
        if (written == QueueHandler.NOT_NOW && slots.chain(slot) == c) {
            slots.putBack(slot);
            q.unpop(c);
            rest.begin();
            stats.addRest();
            return false;
        }
        stats.addRequest();
        if (written >= 0 && slots.chain(slot) == c) {
            completions.complete(slot, written);
        }
        return true;
    }
}
