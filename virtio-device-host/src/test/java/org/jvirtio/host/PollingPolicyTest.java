package org.jvirtio.host;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The polling policy on its own, with plain numbers for times (ns): QEMU's adaptive window and the credit. */
class PollingPolicyTest {
    static final long US = 1_000;

    /** A policy with a maximum window of {@code micros} and the given credit per request. */
    static PollingPolicy policy(long micros, long creditPerRequest) {
        PollingPolicy p = new PollingPolicy();
        p.window(micros);
        p.creditPerRequest(creditPerRequest);
        return p;
    }

    /** One sleep of {@code nanos}, from {@code at}. */
    static long waitFor(PollingPolicy p, long at, long nanos) {
        p.sleeping(at);
        p.woke(at + nanos);
        return at + nanos;
    }

    @Test
    void theWindowHalvesAfterWaitsLongerThanTheMaximumAndIsOffBelowAMicrosecond() {
        PollingPolicy p = policy(32, 0);
        assertEquals(32 * US, p.windowNanos(), "starts at the maximum");
        long t = 1;
        long[] expect = {16 * US, 8 * US, 4 * US, 2 * US, 1 * US, 0, 0};
        for (long w : expect) {
            t = waitFor(p, t, 100 * US);
            assertEquals(w, p.windowNanos());
        }
        assertFalse(p.wantsPoll(), "a window of 0 and no credit: no poll");
    }

    @Test
    void theWindowGrowsFromFourMicrosecondsWhenTheMaximumWouldHaveCoveredTheWait() {
        PollingPolicy p = policy(32, 0);
        long t = 1;
        for (int i = 0; i < 7; i++) {
            t = waitFor(p, t, 100 * US); // down to 0
        }
        long[] expect = {4 * US, 8 * US, 16 * US, 32 * US, 32 * US};
        for (long w : expect) {
            t = waitFor(p, t, 20 * US); // longer than the window, within the maximum
            assertEquals(w, p.windowNanos());
        }
        t = waitFor(p, t, 10 * US); // covered by the window: nothing to adjust
        assertEquals(32 * US, p.windowNanos());
    }

    @Test
    void aWaitWithoutASleepChangesNothingAndPollingOffIgnoresEverything() {
        PollingPolicy p = policy(32, 2_000);
        p.woke(1_000_000); // woke without having slept (a yield, a completion)
        assertEquals(32 * US, p.windowNanos());
        PollingPolicy off = policy(0, 2_000);
        off.served(100);
        assertEquals(0, off.creditNanos(), "no credit is earned with polling off");
        assertFalse(off.wantsPoll());
        waitFor(off, 1, 1_000_000);
        assertEquals(0, off.windowNanos());
    }

    @Test
    void requestsEarnCreditUpToTheCapAndAWaitLongerThanTheCapForfeitsIt() {
        PollingPolicy p = policy(10, 2_000);
        p.served(20);
        assertEquals(40 * US, p.creditNanos());
        assertFalse(p.creditExtends(), "below the minimum a credit-paid poll needs");
        p.served(1_000);
        assertEquals(PollingPolicy.POLL_CREDIT_CAP_NANOS, p.creditNanos(), "banked up to the cap");
        long t = waitFor(p, 1, 150 * US);
        assertEquals(PollingPolicy.POLL_CREDIT_CAP_NANOS, p.creditNanos(), "a wait the bank could have covered keeps it");
        waitFor(p, t, PollingPolicy.POLL_CREDIT_CAP_NANOS + 1);
        assertEquals(0, p.creditNanos(), "a longer one forfeits it");
    }

    @Test
    void creditLengthensAPollOnlyWhileTheOthersAreIdleAndOnlyTheTimePastTheWindowSpendsIt() {
        PollingPolicy p = policy(10, 2_000);
        p.served(50); // 100 us
        assertTrue(p.creditExtends());
        assertEquals(100 * US, p.pollNanos(true));
        assertEquals(10 * US, p.pollNanos(false), "another queue of the thread is busy: the window only");
        assertFalse(p.pastWindow(10 * US));
        assertTrue(p.pastWindow(11 * US), "past the window the poll runs on credit");
        p.polled(8 * US);
        assertEquals(100 * US, p.creditNanos(), "a poll within the window costs no credit");
        p.polled(70 * US);
        assertEquals(40 * US, p.creditNanos(), "60 us past the window");
        p.polled(1_000 * US);
        assertEquals(0, p.creditNanos(), "never below 0");
    }

    @Test
    void withCreditEnoughAPollHappensEvenWithAClosedWindow() {
        PollingPolicy p = policy(32, 2_000);
        long t = 1;
        for (int i = 0; i < 7; i++) {
            t = waitFor(p, t, 100 * US);
        }
        assertEquals(0, p.windowNanos());
        p.served(40); // 80 us
        assertTrue(p.wantsPoll());
        assertEquals(80 * US, p.pollNanos(true));
    }

    @Test
    void badSettingsAreRefused() {
        PollingPolicy p = new PollingPolicy();
        assertThrows(IllegalArgumentException.class, () -> p.window(-1));
        assertThrows(IllegalArgumentException.class, () -> p.creditPerRequest(-1));
    }
}
