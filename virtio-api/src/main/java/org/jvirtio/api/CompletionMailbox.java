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
 * takes used elements in any order).
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

    /** The eventfd, signalled by a post that finds no wake-up pending since the last {@link #reap}. */
    @Override
    public int completionFd() {
        return ready.fd();
    }

    /** Hands every posted completion to the queue's completions, on the queue's thread. Returns how many. */
    @Override
    public int reap() {
        // Before looking: a post from here on signals again (its bit may also be seen below,
        // which costs a wake-up that finds nothing, never a completion left waiting).
        signalled.set(false);
        int n = 0;
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
