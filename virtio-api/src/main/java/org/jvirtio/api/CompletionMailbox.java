package org.jvirtio.api;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import org.jvirtio.api.linux.ErrnoException;

/**
 * Completions that come from other threads: a device that hands its requests to a pool, to a
 * network client whose callbacks run elsewhere, to a process it talks to. {@link #complete} may be
 * called from any thread; the mailbox is the handler's {@link QueueIo}: its eventfd is signalled by
 * the first post after each reap (one write per wake-up, not per completion), and the queue's
 * thread delivers what was posted when it reaps.
 *
 * <pre>{@code
 * public void open(QueueCompletions completions) throws IOException {
 *     mailbox = new CompletionMailbox(queue.queue().size(), completions);
 * }
 * public QueueIo io() { return mailbox; }
 * public int start(DescriptorChain chain, int slot) {
 *     pool.execute(() -> mailbox.complete(slot, serve(chain)));   // chain is valid until completed
 *     return PENDING;
 * }
 * public void close() { mailbox.close(); }                         // called with nothing in flight
 * }</pre>
 *
 * <p>A slot per request, as the queue names them, and a bit per slot: nothing is allocated per
 * request. Completions are delivered in slot order, not in the order they were posted (the driver
 * takes used elements in any order). A completion posted on the queue's own thread (a request
 * that ended there, in another queue's handler of the same thread) takes no atomic instruction:
 * each would wait for every store before it, such as the copies into guest memory that ended the
 * request. The mailbox learns that thread at its first {@link #reap}.
 */
public final class CompletionMailbox implements QueueIo, AutoCloseable {
    private static final int NONE = -1;
    private static final VarHandle WORD = MethodHandles.arrayElementVarHandle(long[].class);
    private final EventFd ready;
    private final QueueCompletions to;
    /** Per slot: the bytes written, posted and not yet delivered, or NONE. */
    private final AtomicIntegerArray written;
    /** One bit per slot whose completion waits for {@link #reap}. */
    private final long[] posted;
    /** Threads inside {@link #complete} (between taking the slot and signalling): close waits for them. */
    private final AtomicInteger posting = new AtomicInteger();
    private volatile boolean closed;
    /**
     * Set by the post that signalled the eventfd, cleared by {@link #reap} before it looks: posts
     * in between find it set and write nothing (one eventfd write per wake-up of the queue's
     * thread, not per completion). A post after the clear signals again.
     */
    private final java.util.concurrent.atomic.AtomicBoolean signalled = new java.util.concurrent.atomic.AtomicBoolean();

    // ---- posts on the queue's own thread: that thread alone, plain ----
    /** The thread of the first {@link #reap} (the queue's); another thread reads null or it, never itself. */
    private Thread owner;
    /** One bit per slot posted on the queue's thread. */
    private final long[] postedHere;
    /** A wake-up is pending for what was posted on the queue's thread since the last reap. */
    private boolean signalledHere;

    /**
     * @param slots the queue's size: slots are 0 to {@code slots - 1}
     * @param to    where {@link #reap} delivers (the completions the handler was opened with)
     */
    public CompletionMailbox(int slots, QueueCompletions to) throws ErrnoException {
        if (slots <= 0 || slots > 32768) {
            throw new IllegalArgumentException("slots must be in [1, 32768], got " + slots);
        }
        written = new AtomicIntegerArray(slots);
        for (int i = 0; i < slots; i++) {
            written.set(i, NONE);
        }
        posted = new long[(slots + 63) >>> 6];
        postedHere = new long[posted.length];
        this.to = Objects.requireNonNull(to, "to");
        ready = EventFd.create(true);
    }

    /**
     * Posts the end of the request in {@code slot}: {@code writtenLength} bytes were written into
     * its chain. Any thread; never blocks. A slot is posted once per request.
     *
     * @throws IllegalStateException when the slot was already posted and not yet delivered (a
     *                               request completed twice), or the mailbox is closed
     */
    public void complete(int slot, int writtenLength) {
        Objects.checkIndex(slot, written.length());
        if (writtenLength < 0) {
            throw new IllegalArgumentException("negative length " + writtenLength + " for slot " + slot);
        }
        if (Thread.currentThread() == owner) {
            completeHere(slot, writtenLength);
            return;
        }
        posting.incrementAndGet();
        try {
            if (closed) {
                throw new IllegalStateException("slot " + slot + " completed after the mailbox was closed");
            }
            if (!written.compareAndSet(slot, NONE, writtenLength)) {
                throw new IllegalStateException("slot " + slot + " completed twice");
            }
            // After the length (a volatile store): whoever sees the bit sees the length.
            long unused = (long) WORD.getAndBitwiseOr(posted, slot >>> 6, 1L << (slot & 63));
            if (!signalled.get() && !signalled.getAndSet(true) && !to.wakeHere()) {
                ready.signal(); // from another thread: on the queue's own, the host reaps without it
            }
        } finally {
            posting.decrementAndGet();
        }
    }

    /** {@link #complete} on the queue's thread: the same checks, plain stores, one wake-up per reap. */
    private void completeHere(int slot, int writtenLength) {
        if (closed) {
            throw new IllegalStateException("slot " + slot + " completed after the mailbox was closed");
        }
        if (written.getPlain(slot) != NONE) {
            throw new IllegalStateException("slot " + slot + " completed twice");
        }
        written.setPlain(slot, writtenLength);
        postedHere[slot >>> 6] |= 1L << (slot & 63);
        if (!signalledHere) {
            signalledHere = true;
            if (!to.wakeHere()) {
                ready.signal(); // a host that cannot run a task on the thread: the eventfd, as from elsewhere
            }
        }
    }

    /** The eventfd, signalled by a post that finds no wake-up pending since the last {@link #reap}. */
    @Override
    public int completionFd() {
        return ready.fd();
    }

    /** Hands every posted completion to the queue's completions, on the queue's thread. Returns how many. */
    @Override
    public int reap() {
        if (owner == null) {
            owner = Thread.currentThread(); // the queue's thread: its own posts need no atomics from now on
        }
        int n = 0;
        if (signalledHere) { // this thread posted since the last reap (else nothing to look at here)
            signalledHere = false; // before looking: a post made while delivering wakes the queue again
            for (int w = 0; w < postedHere.length; w++) {
                long bits = postedHere[w];
                if (bits == 0) {
                    continue;
                }
                postedHere[w] = 0;
                while (bits != 0) {
                    int slot = (w << 6) | Long.numberOfTrailingZeros(bits);
                    bits &= bits - 1;
                    int length = written.getPlain(slot);
                    written.setPlain(slot, NONE); // free before the queue may reuse the slot
                    to.complete(slot, length);
                    n++;
                }
            }
        }
        // Before looking: a post from here on signals again (its bit may also be seen below,
        // which costs a wake-up that finds nothing, never a completion left waiting).
        if (signalled.get()) {
            signalled.set(false);
        }
        for (int w = 0; w < posted.length; w++) {
            if ((long) WORD.getVolatile(posted, w) == 0) {
                continue;
            }
            long bits = (long) WORD.getAndSet(posted, w, 0L);
            while (bits != 0) {
                int slot = (w << 6) | Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                // Free the slot for its next request before the queue may reuse it.
                to.complete(slot, written.getAndSet(slot, NONE));
                n++;
            }
        }
        return n;
    }

    /**
     * Closes the eventfd, on the queue's thread, once every request was delivered
     * ({@link QueueHandler#close()} is called with nothing in flight). Waits for a thread still returning
     * from a {@link #complete} whose completion was delivered, so that its signal never reaches a
     * closed (and perhaps reused) descriptor.
     */
    @Override
    public void close() {
        closed = true;
        while (posting.get() != 0) {
            Thread.onSpinWait();
        }
        ready.close();
    }
}
