package org.jvirtio.api;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;

/**
 * Input from the world for one queue: events arrive on any thread ({@link #offer}: a key pressed,
 * a frame for a port, a bell rung), wait here, and go into the driver's buffers as the driver
 * makes them available; while nothing waits, the queue rests with the driver's buffers still in
 * its ring ({@link QueueHandler#NOT_NOW}), so a stop, a migration or a backend restart never waits
 * for input and nothing is held. The handler comes from {@link #handler}:
 *
 * <pre>{@code
 * private final Inbox<byte[]> keys = new Inbox<>(64, Inbox.WhenFull.DROP_NEWEST);
 *
 * public QueueHandler openQueue(QueueBinding queue) {
 *     return keys.handler((chain, event) -> { chain.writer().write(event); return event.length; });
 * }
 * // any thread:
 * keys.offer(event);
 * }</pre>
 *
 * <p>Bounded: at most {@code capacity} events wait; when it is full the policy drops the newest
 * (the one offered, as a full NIC ring does) or the oldest (the freshest state wins), and
 * {@link #dropped()} counts them. Events belong to a driver session: one offered while no queue
 * is open is dropped (and counted), and what waits when the queue opens is dropped, since the
 * driver that reset the device does not expect the events of its predecessor.
 *
 * <p>Waking the queue costs an eventfd write only when the queue rests (the handler went idle);
 * offering to a queue that is busy taking events is a lock and an add. Nothing is allocated per
 * event beyond what the caller allocates.
 *
 * @param <E> what one event is
 */
public final class Inbox<E> implements AutoCloseable {
    /** What {@link #offer} does when {@code capacity} events wait. */
    public enum WhenFull {
        /** The offered event is dropped (a full NIC ring drops the arriving frame). */
        DROP_NEWEST,
        /** The oldest waiting event is dropped to make room (the freshest state wins). */
        DROP_OLDEST
    }

    /**
     * Writes one event into a chain the driver made available; returns the bytes written (0 for a
     * chain too small to hold it: the event is gone, the chain answered empty). On the queue's
     * thread.
     */
    @FunctionalInterface
    public interface Delivery<E> {
        int deliver(DescriptorChain chain, E event);
    }

    private final int capacity;
    private final WhenFull whenFull;
    private final ArrayDeque<E> waiting;
    private final AtomicLong dropped = new AtomicLong();
    /** Set by the queue's thread when it rests for want of events: the next offer wakes it. */
    private final AtomicBoolean wanted = new AtomicBoolean();
    private final EventFd wake;
    /** Whether a queue is open to take events (between its handler's open and close); guarded by {@code waiting}. */
    private boolean open;
    private boolean closed;

    /**
     * @param capacity the most events that wait at once
     * @param whenFull what an offer does when that many wait
     */
    public Inbox(int capacity, WhenFull whenFull) throws ErrnoException {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be positive: " + capacity);
        }
        this.capacity = capacity;
        this.whenFull = Objects.requireNonNull(whenFull, "whenFull");
        this.waiting = new ArrayDeque<>(Math.min(capacity, 1024));
        this.wake = EventFd.create(true);
    }

    /**
     * Offers one event, from any thread; never blocks.
     *
     * @return false when it was dropped (no queue open, or full under {@link WhenFull#DROP_NEWEST});
     *         under {@link WhenFull#DROP_OLDEST} an older event may have been dropped instead
     */
    public boolean offer(E event) {
        Objects.requireNonNull(event, "event");
        synchronized (waiting) {
            if (!open || closed) {
                dropped.incrementAndGet();
                return false;
            }
            if (waiting.size() >= capacity) {
                dropped.incrementAndGet();
                if (whenFull == WhenFull.DROP_NEWEST) {
                    return false;
                }
                waiting.pollFirst();
            }
            waiting.addLast(event);
        }
        // After the add: the queue's thread sets 'wanted' before it looks again (see start).
        if (wanted.getAndSet(false)) {
            wake.signal();
        }
        return true;
    }

    /**
     * Events dropped so far: offered while full (or, dropping the oldest, pushed out), offered
     * while no queue was open, left from a previous driver session, or failed by the delivery.
     */
    public long dropped() {
        return dropped.get();
    }

    /** Events waiting for a buffer now. */
    public int waiting() {
        synchronized (waiting) {
            return waiting.size();
        }
    }

    private E next() {
        synchronized (waiting) {
            return waiting.pollFirst();
        }
    }

    /**
     * The handler that feeds the queue from this inbox: one queue at a time (the inbox is one
     * queue's). Each chain gets one event through {@code delivery}; with none waiting the chain
     * goes back into the ring and the queue rests until the next offer.
     */
    public QueueHandler handler(Delivery<E> delivery) {
        Objects.requireNonNull(delivery, "delivery");
        return new Feeder(delivery);
    }

    /** Releases the eventfd; the inbox takes no more events. */
    @Override
    public void close() {
        synchronized (waiting) {
            closed = true;
            waiting.clear();
        }
        wake.close();
    }

    private final class Feeder implements QueueHandler, QueueIo {
        private final Delivery<E> delivery;
        private final MemorySegment counter = Arena.ofAuto().allocate(8, 8);
        private QueueCompletions completions;

        Feeder(Delivery<E> delivery) {
            this.delivery = delivery;
        }

        @Override
        public void open(QueueCompletions c) {
            completions = c;
            synchronized (waiting) {
                if (open) {
                    throw new IllegalStateException("the inbox already feeds an open queue");
                }
                dropped.addAndGet(waiting.size()); // a new driver session: its predecessor's events are stale
                waiting.clear();
                open = true;
            }
            wanted.set(false);
            Libc.eventfdRead(wake.fd(), counter); // a wake-up meant for the last session
        }

        @Override
        public int start(DescriptorChain chain, int slot) {
            E e = next();
            if (e == null) {
                // Rest, but first say so and look once more: an offer that came in between sees
                // 'wanted' and wakes the queue (its add came before its look at 'wanted').
                wanted.set(true);
                e = next();
                if (e == null) {
                    return NOT_NOW;
                }
            }
            int n;
            try {
                n = delivery.deliver(chain, e);
            } catch (RuntimeException | Error t) {
                dropped.incrementAndGet(); // not retried: an event the device fails on would take every buffer
                throw t; // the engine answers the chain with nothing written
            }
            return Math.max(0, n);
        }

        @Override
        public QueueIo io() {
            return this;
        }

        @Override
        public int completionFd() {
            return wake.fd();
        }

        /** An offer woke the queue (its host has read the eventfd): take the driver's buffers again. */
        @Override
        public int reap() {
            completions.resume();
            return 0;
        }

        @Override
        public void close() {
            synchronized (waiting) {
                open = false;
            }
            wanted.set(false);
        }
    }
}
