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
        p.polled(8 * US, false);
        assertEquals(100 * US, p.creditNanos(), "a poll within the window costs no credit");
        p.polled(70 * US, false);
        assertEquals(40 * US, p.creditNanos(), "60 us past the window");
        p.polled(1_000 * US, false);
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

    /**
     * A queue of depth 1 driven by a guest that waits for interrupts, as the engine drives the
     * policy: after each request the device polls if the policy wants it, and finds the next
     * request after the guest's round trip {@code roundTrip[i]} if the poll lasts that long;
     * otherwise it sleeps, and the guest's kick reaches it {@code wake} later (a wake-up on a
     * virtual machine's host). Returns the share of requests a poll found, in percent.
     */
    static int depthOne(PollingPolicy p, long[] roundTrip, long wake) {
        long t = 1;
        int found = 0;
        for (long r : roundTrip) {
            p.served(1);
            long arrival = t + r;
            if (p.wantsPoll()) {
                long poll = p.pollNanos(true);
                if (r <= poll) {
                    p.polled(r, true);
                    found++;
                    t = arrival + 2 * US;
                    continue;
                }
                p.polled(poll, false);
            }
            p.sleeping(t);
            p.woke(arrival + wake);
            t = arrival + wake + 2 * US;
        }
        return 100 * found / roundTrip.length;
    }

    /**
     * Round trips of 18 us; one in {@code every} a straggler of 45 us (a guest's slow wake-up),
     * one in 10 times that many one of 300 us (the guest's vCPU descheduled a while: longer than
     * the credit bank covers).
     */
    static long[] roundTrips(int n, int every) {
        long[] r = new long[n];
        for (int i = 0; i < n; i++) {
            r[i] = i % (10 * every) == 10 * every - 1 ? 300 * US : i % every == every - 1 ? 45 * US : 18 * US;
        }
        return r;
    }

    /**
     * Depth-1 reads of an image in the page cache: the guest's round trip (18 us) fits the
     * window, but now and then the guest is slow, once in a while longer than the credit bank
     * covers, and a sleeping device is woken 45 us after the kick. QEMU's rule alone halves the
     * window at such a straggler and, once the window is below the round trip, at every request
     * after it (each sleep now looks longer than the maximum, because of the wake-up), down to
     * 0; the credit then pays for one poll in ten: a round that started polling ends up
     * sleeping, and which one a round lands in is chance (issue 29: p50 19 us in some rounds,
     * 65-88 us in others). A straggler among polls that keep finding work costs one poll and is
     * not taken for an idle queue, so the window holds.
     */
    @Test
    void depthOneRoundTripsKeepTheWindowDespiteAStragglerNowAndThen() {
        PollingPolicy p = policy(32, 2_000);
        int found = depthOne(p, roundTrips(10_000, 50), 45 * US);
        assertEquals(32 * US, p.windowNanos(), "the window holds");
        assertTrue(found >= 97, "polls found " + found + "% of the requests");
    }

    /**
     * A window that closed (the queue was idle) opens again when a depth-1 load comes back,
     * although every sleep then lasts longer than the maximum (the guest's round trip plus the
     * device's wake-up): the credit the requests earn pays for a poll, the poll finds the next
     * request within the maximum, and that is what the window grows to cover.
     */
    @Test
    void aClosedWindowOpensAgainWhenAPollOnCreditFindsTheRoundTripWithinTheMaximum() {
        PollingPolicy p = policy(32, 2_000);
        long t = 1;
        for (int i = 0; i < 7; i++) {
            t = waitFor(p, t, 1_000 * US); // idle: closed
        }
        assertEquals(0, p.windowNanos());
        depthOne(p, roundTrips(100, 1_000), 45 * US);
        assertEquals(32 * US, p.windowNanos(), "open again within 100 requests");
        int found = depthOne(p, roundTrips(10_000, 50), 45 * US);
        assertTrue(found >= 97, "polls found " + found + "% of the requests");
    }

    /** An idle queue still stops polling at once: requests 1 ms apart, each poll a miss. */
    @Test
    void requestsFarApartStillCloseTheWindow() {
        PollingPolicy p = policy(32, 2_000);
        long[] far = new long[20];
        java.util.Arrays.fill(far, 1_000 * US);
        int found = depthOne(p, far, 45 * US);
        assertEquals(0, found);
        assertEquals(0, p.windowNanos());
        assertEquals(0, p.creditNanos(), "waits longer than the cap forfeit the credit");
    }
}
