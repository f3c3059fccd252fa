package org.jvirtio.net;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The forwarding table's clock: an address stays learned while it keeps being seen (each frame
 * refreshes its time, though the table writes that time only when the second changed), ages out
 * when it is not seen for the aging time, and follows its sender to another port.
 */
class MacTableTest {
    static final long A = 0x5254_0000_000aL;
    static final long B = 0x5254_0000_000bL;

    @Test
    void anAddressSeenAgainStaysAndOneNotSeenAgesOut() {
        MacTable t = new MacTable(64, 300);
        t.learn(A, 1, 0);
        t.learn(B, 2, 0);
        for (int now = 0; now <= 250; now += 50) {
            t.learn(A, 1, now); // A keeps sending; the same second twice writes nothing
            t.learn(A, 1, now);
        }
        assertEquals(1, t.lookup(A, 299));
        assertEquals(2, t.lookup(B, 299), "not aged before its time");
        assertEquals(0, t.lookup(B, 300), "B, not seen for the aging time, is forgotten");
        assertEquals(1, t.lookup(A, 400), "A, last seen at 250, is still learned at 400");
        assertEquals(0, t.lookup(A, 550), "and forgotten at 550");
    }

    @Test
    void anAddressFollowsItsSenderToAnotherPort() {
        MacTable t = new MacTable(64, 300);
        t.learn(A, 1, 10);
        t.learn(A, 3, 10);
        assertEquals(3, t.lookup(A, 10));
        t.learn(A, 1, 11);
        assertEquals(1, t.lookup(A, 11));
    }
}
