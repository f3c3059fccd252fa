package org.jvirtio.api;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class EventFdTest {
    @Test
    void signalsAccumulateAndReadResets() throws Exception {
        try (EventFd e = EventFd.create(true)) {
            assertEquals(0, e.read(), "non-blocking read of a zero counter");
            e.signal();
            e.signal();
            assertEquals(2, e.read());
            assertEquals(0, e.read());
        }
    }

    @Test
    void awaitTimesOutAndWakesFromAnotherThread() throws Exception {
        try (EventFd e = EventFd.create(false)) {
            long t0 = System.nanoTime();
            assertEquals(0, e.await(50));
            assertTrue(System.nanoTime() - t0 >= 40_000_000L);
            Thread t = Thread.ofPlatform().start(() -> {
                try {
                    Thread.sleep(20);
                } catch (InterruptedException ignored) {
                    // test thread
                }
                e.signal();
            });
            assertEquals(1, e.await(10_000));
            t.join();
        }
    }

    @Test
    void closeIsIdempotentAndAdoptRejectsBadFds() throws Exception {
        EventFd e = EventFd.create(true);
        e.close();
        e.close();
        assertThrows(IllegalArgumentException.class, () -> EventFd.adopt(-1, true));
    }
}
