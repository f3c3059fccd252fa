package org.jvirtio.net;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A receive queue's room shared among the ports sending into it (issue 26's fair share): a
 * storming sender never holds the whole queue, a newcomer always finds room while the others keep
 * to their shares, and once the queue drains every sender settles at an equal share.
 */
class SenderSharesTest {
    /** Takes as many as port {@code from} may now; returns how many. */
    private static int storm(SenderShares s, int from) {
        int n = 0;
        while (s.take(from)) {
            n++;
        }
        return n;
    }

    @Test
    void aStormingSenderHoldsHalfAndANewcomerAlwaysFindsRoom() {
        SenderShares s = new SenderShares(256);
        assertEquals(128, storm(s, 0), "alone, a storming port holds half of the room");
        assertTrue(s.take(1), "a quiet port's frame gets in beside the storm");
        assertEquals(84, storm(s, 1), "and up to its share with two senders counted, plus room for one more (256 / 3 = 85)");
        assertFalse(s.take(0), "the first port is over its share now: it waits until it drains below");
        assertTrue(s.take(2), "a third port still finds room");
        // The storms drain (the guest takes frames in order); everyone storms again as room frees.
        for (int round = 0; round < 2000; round++) {
            int from = round % 3;
            if (s.waiting(from) > 0) {
                s.release(from);
            }
            for (int p = 0; p < 3; p++) {
                storm(s, p);
            }
        }
        for (int p = 0; p < 3; p++) {
            assertEquals(64, s.waiting(p), "three storming ports settle at 256 / 4 each");
        }
        assertTrue(s.take(3), "and a fourth finds room");
        assertEquals(64 * 3 + 1, s.total());
    }

    @Test
    void theRoomComesBackAsFramesLeave() {
        SenderShares s = new SenderShares(8);
        assertEquals(4, storm(s, 5));
        for (int i = 0; i < 4; i++) {
            s.release(5);
        }
        assertEquals(0, s.total());
        assertEquals(4, storm(s, 7), "the sender gone, a new one has the same half");
        assertTrue(s.take(1000), "port ids beyond the first table grow it");
    }

    @Test
    void theShareTestWithoutADivisionAgreesWithTheShareEverywhere() {
        for (int capacity = 1; capacity <= 300; capacity++) {
            for (int k = 1; k <= 70; k++) {
                int share = Math.max(1, capacity / k);
                for (int mine = 0; mine <= capacity + 1; mine++) {
                    assertEquals(mine >= share, SenderShares.atShare(mine, k, capacity), "capacity " + capacity + ", k " + k + ", mine " + mine);
                }
            }
        }
    }
}
