package org.jvirtio.net;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayDeque;
import java.util.concurrent.atomic.AtomicBoolean;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.QueueCompletions;

/**
 * The frames waiting for one receive queue ({@link RxQueue}): bounded, each sending port held to
 * its share ({@link SenderShares}), and the hand-shake that wakes the queue when a frame comes
 * after it said it would not look again.
 *
 * <p>Two inboxes in one. Frames from other threads wait in a locked deque, and the queue is woken
 * through its eventfd (or, on its own I/O thread, {@link QueueCompletions#wakeHere}). Frames from
 * the queue's own thread (a port whose transmit queue runs on the same I/O thread, the default of
 * {@code bin/vhost-user net + net}) wait in a deque of that thread alone: no lock, no atomic
 * instruction, and the frame is held without one ({@link Frame#retainHere}). On a busy switch
 * each locked instruction waited for the stores before it (the copy into the receiver's guest
 * memory, its used element) to reach the front-end's cache. When both hold frames they are taken
 * in turn.
 */
final class RxInbox {
    /** Frames that wait for one receive queue at most (on each side). */
    static final int CAPACITY = 256;
    private static final VarHandle ELSEWHERE;

    static {
        try {
            ELSEWHERE = MethodHandles.lookup().findVarHandle(RxInbox.class, "elsewhere", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    // ---- the frames waiting from other threads, guarded by 'waiting' ----
    private final ArrayDeque<Frame> waiting = new ArrayDeque<>(CAPACITY);
    /** Each sending port's share of the room (for a fair share of it). */
    private final SenderShares shares = new SenderShares(CAPACITY);
    private boolean open;
    /**
     * Frames in {@link #waiting}: written under its lock, read without it by the queue's thread
     * (a volatile read after its volatile store of {@code wanted}) to skip the lock when no other
     * thread has frames waiting. An offer's increment is a volatile store, before its volatile
     * {@code wanted.getAndSet}: the hand-shake that never lets both sides miss each other; the
     * queue's own decrement needs only release order (nobody waits on it going down).
     */
    private int elsewhere;
    /** Set by the queue's thread when it will not look at the frames again without a wake-up. */
    private final AtomicBoolean wanted = new AtomicBoolean();
    private final EventFd wake;
    private QueueCompletions completions;

    // ---- the frames waiting from the queue's own thread: that thread alone, no lock ----
    /** The queue's thread (plain: another thread reads null or this one, never its own). */
    private Thread owner;
    private final ArrayDeque<Frame> here = new ArrayDeque<>(CAPACITY);
    private final SenderShares hereShares = new SenderShares(CAPACITY);
    /** When frames wait on both sides, they are taken from each in turn. */
    private boolean turnHere;
    /** Where the frame {@link #next()} returned came from. */
    private boolean tookHere;

    RxInbox() throws IOException {
        this.wake = EventFd.create(true);
    }

    /** The eventfd other threads signal (the queue's completion fd). */
    int fd() {
        return wake.fd();
    }

    // ---- any thread ----

    /** Takes a frame (retaining it); false when it cannot wait here (closed, full, the sender over its share). */
    boolean offer(Frame f) {
        if (Thread.currentThread() == owner) {
            return offerHere(f);
        }
        int from = f.from.id();
        synchronized (waiting) {
            // Each sender gets an equal share of the room, with room kept for one more sender: a
            // port flooding the switch fills its share, not everybody's.
            if (!open || !shares.take(from)) {
                return false;
            }
            f.retain();
            waiting.addLast(f);
            ELSEWHERE.setVolatile(this, elsewhere + 1);
            // After the add: the queue's thread sets 'wanted' before it looks again. Under the
            // lock, so that close(), which takes it first, never closes the eventfd under a
            // signal (a closed fd's number may already be another file's).
            if (wanted.getAndSet(false) && !completions.wakeHere()) {
                wake.signal(); // from another thread: on the queue's own, the host reaps without it
            }
        }
        return true;
    }

    /** {@link #offer} on the queue's own thread: the same rules, without the lock. */
    private boolean offerHere(Frame f) {
        if (!open || !hereShares.take(f.from.id())) {
            return false;
        }
        f.retainHere();
        here.addLast(f);
        if (wanted.get()) {
            // This thread is the one that sets it; another thread's offer may clear it too (both
            // then wake the queue: one wake-up too many, never one too few).
            wanted.lazySet(false);
            if (!completions.wakeHere()) {
                wake.signal();
            }
        }
        return true;
    }

    // ---- the queue's thread ----

    /** The queue opens (on its thread, the one whose senders need no lock from now on): frames are taken. */
    void open(QueueCompletions c) {
        completions = c;
        owner = Thread.currentThread();
        synchronized (waiting) {
            open = true;
        }
        // Nothing served yet (the ring may stay empty): the first frame wakes the queue.
        wanted.set(true);
    }

    /** The queue will not look at the frames again without a wake-up (said before it looks a last time). */
    void lookLater() {
        wanted.set(true);
    }

    /** The next frame waiting (from this thread's senders and the others' in turn), or null; {@link #tookHere} says whose. */
    Frame next() {
        int others = (int) ELSEWHERE.getVolatile(this);
        if (!here.isEmpty() && (others == 0 || (turnHere = !turnHere))) {
            Frame f = here.pollFirst();
            hereShares.release(f.from.id());
            tookHere = true;
            return f;
        }
        if (others == 0) {
            return null; // read after 'wanted' was set (both volatile): an offer after this read wakes the queue
        }
        tookHere = false;
        synchronized (waiting) {
            Frame f = waiting.pollFirst();
            if (f != null) {
                shares.release(f.from.id());
                ELSEWHERE.setRelease(this, elsewhere - 1);
            }
            return f;
        }
    }

    /**
     * Whether this is the queue's own thread, the inbox takes frames, and none waits on either
     * side (for a frame placed at once: it must not pass frames that wait). The frames of other
     * threads are other senders' (a sender's transmit queue runs on one thread, and only a
     * sender's own frames have an order to keep), so their count is read without ordering: one
     * offered while this looks may go after the frame placed now, as it could have anyway.
     */
    boolean emptyHere() {
        return Thread.currentThread() == owner && open && here.isEmpty() && (int) ELSEWHERE.getOpaque(this) == 0;
    }

    /** Whether the frame {@link #next()} returned last came from the queue's own thread. */
    boolean tookHere() {
        return tookHere;
    }

    /** The queue is done with {@code f}, which {@link #next()} returned from its own thread's side or not. */
    static void release(Frame f, boolean fromHere) {
        if (fromHere) {
            f.releaseHere();
        } else {
            f.release();
        }
    }

    /** Takes no more frames (those waiting are still returned by {@link #next()}). */
    void shut() {
        synchronized (waiting) {
            open = false;
        }
    }

    /** Closes the eventfd, once {@link #shut} and emptied. */
    void close() {
        wanted.set(false);
        synchronized (waiting) {
            wake.close(); // no offer is between its add and its signal now (both under the lock)
        }
    }
}
