package org.jvirtio.net;

import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A frame's holders: the sender and receive queues of its thread count without an atomic
 * instruction, holders on other threads with one; the frame is done (the sender's chain goes
 * back) exactly once, when the last holder anywhere lets go, whatever the order.
 */
class FrameTest {
    /** Counts the ends a frame reports through its owner. */
    static final class Owner implements FrameOwner {
        final AtomicInteger sent = new AtomicInteger();

        @Override
        public void sent(Frame f) {
            sent.incrementAndGet();
        }
    }

    private static Frame begun(Owner o) {
        Frame f = new Frame(o, 0);
        f.begin(null, null, 0, 60);
        return f;
    }

    @Test
    void holdersOnTheSendersThreadEndTheFrameOnceInEitherOrder() {
        Owner o = new Owner();
        Frame f = begun(o);
        assertTrue(f.releaseOwn(), "nobody took it: the sender ends it itself");
        assertEquals(0, o.sent.get(), "the sender's own end is its return value, not a report");

        f.begin(null, null, 0, 60);
        f.retainHere();
        f.retainHere();
        assertFalse(f.releaseOwn(), "two receivers of this thread still hold it");
        assertFalse(f.releaseHere());
        assertEquals(0, o.sent.get());
        assertTrue(f.releaseHere(), "the last holder");
        assertEquals(1, o.sent.get());
        assertThrows(IllegalStateException.class, f::releaseHere, "once too often");

        f.begin(null, null, 0, 60);
        f.retainHere();
        assertFalse(f.releaseHere(), "the sender still holds it");
        assertTrue(f.releaseOwn());
        assertEquals(1, o.sent.get());
    }

    @Test
    void holdersOnOtherThreadsAndThisOneEndTheFrameOnceWhateverTheOrder() throws Exception {
        Owner o = new Owner();
        Frame f = begun(o);
        f.retain();
        assertFalse(f.releaseOwn(), "a holder on another thread");
        assertTrue(f.release(), "the last holder, elsewhere");
        assertEquals(1, o.sent.get());
        assertThrows(IllegalStateException.class, f::release, "once too often");

        f.begin(null, null, 0, 60);
        f.retain();
        assertFalse(f.release());
        assertTrue(f.releaseOwn(), "the other thread let go first");
        assertEquals(1, o.sent.get());

        // Races: a holder on another thread lets go while this thread's holders do.
        int lives = 50_000;
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicInteger endedElsewhere = new AtomicInteger();
        CyclicBarrier go = new CyclicBarrier(2);
        Frame g = new Frame(o, 1);
        Thread other = Thread.ofPlatform().start(() -> {
            try {
                for (int i = 0; i < lives; i++) {
                    go.await();
                    if (g.release()) {
                        endedElsewhere.incrementAndGet();
                    }
                }
            } catch (Throwable e) {
                failure.set(e);
            }
        });
        int before = o.sent.get();
        int endedHere = 0;
        int endedByOwn = 0;
        for (int i = 0; i < lives; i++) {
            g.begin(null, null, 0, 60);
            g.retain();          // to the other thread
            g.retainHere();      // to a receive queue of this one
            go.await();
            if (i % 2 == 0) {
                if (g.releaseOwn()) {
                    endedByOwn++;
                }
                if (g.releaseHere()) {
                    endedHere++;
                }
            } else {
                if (g.releaseHere()) {
                    endedHere++;
                }
                if (g.releaseOwn()) {
                    endedByOwn++;
                }
            }
            // the next life begins only once this one ended (as a transmit slot is reused only after its chain came back)
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (endedByOwn + endedHere + endedElsewhere.get() < i + 1) {
                assertNull(failure.get());
                assertTrue(System.nanoTime() < deadline, "life " + i + " never ended");
                Thread.onSpinWait();
            }
        }
        other.join();
        assertNull(failure.get());
        assertEquals(lives, endedByOwn + endedHere + endedElsewhere.get(), "every life ended exactly once");
        assertEquals(endedHere + endedElsewhere.get(), o.sent.get() - before, "each end but the sender's own reported once");
    }
}
